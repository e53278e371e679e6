"""Ingest on the synthetic generator's native layouts (pipeline.synthetic): every dataset, exact
accounting against the generator's own plan, FER2013 variants against torchvision, CK+48 copies."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ingest_helpers import check_accounting, decoded, ingest
from pipeline.core.labels import to_unified
from pipeline.synthetic import MARKER, write_dataset, write_sample
from pipeline.synthetic import layouts


@pytest.fixture(scope="module")
def raw(request, tmp_path_factory) -> Path:
    """The session's generated sample (``generated_raw``) when conftest has it, else a small one."""
    try:
        return request.getfixturevalue("generated_raw")
    except pytest.FixtureLookupError:
        root = tmp_path_factory.mktemp("raw")
        write_sample(root, per_class=1, seed=0)
        return root


def generated(raw: Path, name: str) -> tuple[int, int]:
    """(per_class, seed) the generator used for ``name``."""
    rec = json.loads((raw / MARKER).read_text())["datasets"][name]
    return rec["per_class"], rec["seed"]


def test_fer2013(raw, tmp_path):
    per_class, seed = generated(raw, "fer2013")
    rows = layouts.fer2013_rows(per_class, seed)
    summary, manifest, quarantine = ingest("fer2013", raw / "fer2013", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, len(rows))
    assert summary["kept"] == len(rows)
    assert manifest.column("label").to_pylist() == [to_unified("fer2013", e) for e, _, _ in rows]
    assert manifest.column("source_split").to_pylist() == [u for _, _, u in rows]
    first = decoded(manifest.column("image")[0].as_py())
    assert np.array_equal(first.ravel(), np.array(rows[0][1].split(), dtype=np.uint8))


def test_ckplus_official(raw, tmp_path):
    per_class, seed = generated(raw, "ckplus")
    plan = layouts.ckplus_plan(per_class, seed)
    labelled = [s for s in plan if s["labelled"]]
    n_frames = sum(s["frames"] for s in plan)
    summary, manifest, quarantine = ingest("ckplus", raw / "ckplus", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, n_frames)
    assert summary["layout"] == "official"
    # 3 peak frames + 1 neutral frame per labelled sequence (every sequence has 8-12 frames)
    assert summary["kept"] == 4 * len(labelled)
    assert summary["per_class"]["neutral"] == len(labelled)
    for s in labelled:
        assert summary["per_class"][s["label"]] >= 3
    assert summary["per_reason"] == {
        "frame_not_selected": sum(s["frames"] - 4 for s in labelled),
        "unlabelled_sequence": sum(s["frames"] for s in plan if not s["labelled"]),
    }
    assert set(manifest.column("subject").to_pylist()) == {s["subject"] for s in labelled}


def test_ckplus48_copy(tmp_path):
    write_dataset("ckplus", tmp_path / "ck48", per_class=1, seed=3, layout="ckplus48")
    labelled = [s for s in layouts.ckplus_plan(1, 3) if s["labelled"]]
    summary, manifest, quarantine = ingest("ckplus", tmp_path / "ck48", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 3 * len(labelled))
    assert summary["layout"] == "ck+48" and summary["quarantined"] == 0
    assert summary["per_class"] == {s["label"]: 3 for s in labelled}
    assert set(manifest.column("width").to_pylist()) == {48}


def test_jaffe(raw, tmp_path):
    per_class, _ = generated(raw, "jaffe")
    n = len(layouts.JAFFE_SUBJECTS) * 7 * max(1, math.ceil(per_class / len(layouts.JAFFE_SUBJECTS)))
    summary, manifest, quarantine = ingest("jaffe", raw / "jaffe", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, n)
    assert summary["kept"] == n
    assert sorted(set(manifest.column("subject").to_pylist())) == sorted(layouts.JAFFE_SUBJECTS)
    assert set(manifest.column("channels").to_pylist()) == {1}


def test_rafdb(raw, tmp_path):
    per_class, _ = generated(raw, "rafdb")
    summary, manifest, quarantine = ingest("rafdb", raw / "rafdb", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 7 * per_class)
    assert summary["kept"] == 7 * per_class
    assert set(zip(manifest.column("width").to_pylist(), manifest.column("height").to_pylist())) == {(100, 100)}
    assert set(manifest.column("source_split").to_pylist()) <= {"train", "test"}


def test_kdef(raw, tmp_path):
    per_class, _ = generated(raw, "kdef")
    people = layouts.kdef_people(per_class)
    n = len(people) * 2 * 7 * 5
    summary, manifest, quarantine = ingest("kdef", raw / "kdef", tmp_path / "all", png_level=0)  # fast: photos
    check_accounting(summary, manifest, quarantine, n)
    assert summary["kept"] == n
    assert set(manifest.column("subject").to_pylist()) == {f"{sex}{pid:02d}" for sex, pid in people}
    summary, _, _ = ingest("kdef", raw / "kdef", tmp_path / "front", angles=["S"], png_level=0)
    assert summary["kept"] == n // 5 and summary["per_reason"] == {"angle_not_selected": n - n // 5}


@pytest.mark.parametrize("variant", ["fer2013", "icml", "kaggle"])
def test_fer2013_variants_match_torchvision(tmp_path, monkeypatch, variant):
    import torchvision.datasets.fer2013 as tv_fer

    monkeypatch.setattr(tv_fer, "check_integrity", lambda *a, **k: True)  # the md5 of the real file only
    write_dataset("fer2013", tmp_path / "fer2013", per_class=3, seed=1, files=(variant,))
    summary, manifest, quarantine = ingest("fer2013", tmp_path / "fer2013", tmp_path / "out")
    tv_train = tv_fer.FER2013(str(tmp_path), split="train")
    tv_test = tv_fer.FER2013(str(tmp_path), split="test")
    check_accounting(summary, manifest, quarantine, len(tv_train) + len(tv_test))
    ours = manifest.to_pylist()
    expected = [tv_train[i] for i in range(len(tv_train))]
    if variant != "kaggle":
        expected += [tv_test[i] for i in range(len(tv_test))]
    else:
        assert summary["per_reason"] == {"unlabelled": len(tv_test)}
    assert len(ours) == len(expected)
    for row, (img, label) in zip(ours, expected):
        assert np.array_equal(decoded(row["image"]), np.asarray(img))
        assert row["label"] == to_unified("fer2013", label)
