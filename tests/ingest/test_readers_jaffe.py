"""JAFFE reader: names parsed into subject/label, grey TIFFs stay one channel, bad names accounted for."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ingest_helpers import check_accounting, decoded, ingest, reasons, write_empty, write_image
from pipeline.ingest.readers import LayoutError


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # from the deliberately garbled TIFF
def test_jaffe(tmp_path):
    root = tmp_path / "jaffe"
    base = root / "jaffedbase"
    a = write_image(base / "KA.AN1.39.tiff", seed=1, size=(256, 256))
    write_image(base / "KA.HA2.45.tiff", seed=2, size=(256, 256))
    write_image(base / "YM.NE3.51.tiff", seed=3, size=(256, 256))
    write_image(base / "KA.XX1.40.tiff", seed=4, size=(256, 256))       # unknown code
    write_image(base / "KA_AN1.tiff", seed=5, size=(256, 256))          # bad name
    write_empty(base / "NM.SU1.90.tiff")                                 # empty file
    (base / "KM.SA1.10.tiff").write_bytes(b"II*\x00garbage")            # unreadable
    (base / "README").write_text("JAFFE")
    summary, manifest, quarantine = ingest("jaffe", root, tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 7)
    rows = manifest.to_pylist()
    assert [r["image_id"] for r in rows] == ["jaffe/KA.AN1.39", "jaffe/KA.HA2.45", "jaffe/YM.NE3.51"]
    assert [r["subject"] for r in rows] == ["KA", "KA", "YM"]
    assert [r["label_name"] for r in rows] == ["anger", "happiness", "neutral"]
    assert [r["native_label"] for r in rows] == ["AN", "HA", "NE"]
    assert rows[0]["source"] == "jaffedbase/KA.AN1.39.tiff"
    assert json.loads(rows[1]["extra"]) == {"index": 2, "number": 45}
    assert all((r["width"], r["height"], r["channels"]) == (256, 256, 1) for r in rows)
    assert np.array_equal(decoded(rows[0]["image"]), a)
    assert reasons(quarantine) == {"unknown_label": 1, "bad_name": 1, "empty_file": 1, "unreadable": 1}
    assert summary["ignored"]["examples"] == ["jaffedbase/README"]
    details = quarantine.column("detail").to_pylist()
    assert all("jaffedbase/" in d for d in details)


def test_jaffe_empty_root(tmp_path):
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "README").write_text("x")
    with pytest.raises(LayoutError, match=f"{tmp_path / 'j'}: no image files found.*KA.AN1.39.tiff"):
        ingest("jaffe", tmp_path / "j", tmp_path / "out")
