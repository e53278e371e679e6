"""KDEF reader: names parsed into session/sex/id/expression/angle, angle selection accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest_helpers import check_accounting, ingest, reasons, write_image
from pipeline.ingest.readers import LayoutError


def kdef(root: Path) -> None:
    top = root / "KDEF"
    seed = 0
    for person in ("AF01", "BF01", "AM02"):
        for code in ("AF", "HA"):
            for angle in ("FL", "S", "FR"):
                seed += 1
                write_image(top / person / f"{person}{code}{angle}.JPG", seed, size=(56, 76), channels=3, fmt="JPEG")
    write_image(top / "AM02" / "AM02XXS.JPG", seed=100, size=(56, 76), channels=3, fmt="JPEG")   # unknown code
    write_image(top / "AM02" / "AM02HAS (1).JPG", seed=101, size=(56, 76), channels=3, fmt="JPEG")  # bad name
    write_image(top / "AM02" / "BM03NES.JPG", seed=102, size=(56, 76), channels=3, fmt="JPEG")  # wrong folder


def test_kdef_frontal_only(tmp_path):
    kdef(tmp_path / "kdef")
    summary, manifest, quarantine = ingest("kdef", tmp_path / "kdef", tmp_path / "out", angles=["S"])
    check_accounting(summary, manifest, quarantine, 18 + 3)
    rows = manifest.to_pylist()
    assert [r["image_id"] for r in rows] == ["kdef/AF01AFS", "kdef/AF01HAS", "kdef/AM02AFS", "kdef/AM02HAS",
                                            "kdef/BF01AFS", "kdef/BF01HAS"]
    assert [r["subject"] for r in rows] == ["F01", "F01", "M02", "M02", "F01", "F01"]
    assert [r["label_name"] for r in rows] == ["fear", "happiness"] * 3
    assert json.loads(rows[4]["extra"]) == {"angle": "S", "session": "B"}
    assert rows[0]["source"] == "KDEF/AF01/AF01AFS.JPG"
    assert all((r["width"], r["height"], r["channels"]) == (56, 76, 3) for r in rows)
    assert reasons(quarantine) == {"angle_not_selected": 12, "unknown_label": 1, "bad_name": 2}
    assert summary["angles"] == ["S"]


def test_kdef_all_angles_by_default_and_flat_root(tmp_path):
    kdef(tmp_path / "kdef")
    summary, manifest, quarantine = ingest("kdef", tmp_path / "kdef" / "KDEF", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 21)
    assert summary["kept"] == 18 and summary["angles"] == ["FL", "HL", "S", "HR", "FR"]
    assert manifest.column("source").to_pylist()[0] == "AF01/AF01AFFL.JPG"
    with pytest.raises(ValueError, match="subset of FL, HL, S, HR, FR"):
        ingest("kdef", tmp_path / "kdef", tmp_path / "out2", angles=["UP"])
    with pytest.raises(LayoutError, match="no person folder like AF01"):
        ingest("kdef", tmp_path, tmp_path / "out3")
