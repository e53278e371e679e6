"""RAF-DB reader: label file + image variant, splits from names, every line and file accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ingest_helpers import check_accounting, decoded, ingest, reasons, write_image, write_truncated
from pipeline.ingest.readers import LayoutError


def raf(root: Path) -> dict[str, np.ndarray]:
    """train_00001..3, test_0001..2 labelled; test_0003 labelled without images; train_00009 unlabelled."""
    basic = root / "basic"
    lines = ["train_00001.jpg 5", "train_00002.jpg 1", "train_00003.jpg 8", "test_0001.jpg 4",
             "test_0002.jpg 7", "test_0003.jpg 2", "this line is malformed", "", "train_00001.jpg 5"]
    (basic / "EmoLabel").mkdir(parents=True)
    (basic / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    arrays = {}
    for i, stem in enumerate(["train_00001", "train_00002", "train_00003", "test_0001", "test_0002", "train_00009"]):
        arrays[stem] = write_image(basic / "Image" / "aligned" / f"{stem}_aligned.png", seed=i,
                                   size=(100, 100), channels=3)
        write_image(basic / "Image" / "original" / f"{stem}.jpg", seed=i + 50, size=(160, 120), channels=3,
                    fmt="JPEG")
    # PNG bytes under .jpg names keep the test's pixels exact (RAF-DB's are JPEG; PIL reads by content)
    for p in sorted((basic / "Image" / "aligned").glob("*.png")):
        p.rename(p.with_suffix(".jpg"))
    write_truncated(basic / "Image" / "original" / "test_0002.jpg", seed=99)
    write_image(basic / "Image" / "aligned" / "holiday.jpg", seed=77, size=(100, 100), channels=3, fmt="JPEG")
    return arrays


def test_rafdb_aligned(tmp_path):
    arrays = raf(tmp_path / "rafdb")
    summary, manifest, quarantine = ingest("rafdb", tmp_path / "rafdb", tmp_path / "out")
    # inputs: 7 aligned files + 3 label lines without a kept file (test_0003, malformed, repeated line)
    check_accounting(summary, manifest, quarantine, 7 + 3)
    rows = manifest.to_pylist()
    assert [r["image_id"] for r in rows] == ["rafdb/train_00001", "rafdb/train_00002", "rafdb/test_0001",
                                            "rafdb/test_0002"]
    assert [r["label_name"] for r in rows] == ["sadness", "surprise", "happiness", "neutral"]
    assert [r["source_split"] for r in rows] == ["train", "train", "test", "test"]
    assert all(r["subject"] is None and r["channels"] == 3 for r in rows)
    assert rows[0]["source"] == "basic/Image/aligned/train_00001_aligned.jpg"
    assert json.loads(rows[0]["extra"]) == {"variant": "aligned"}
    for r in rows:
        assert np.array_equal(decoded(r["image"]), arrays[r["image_id"].split("/")[1]])
    got = dict(zip(quarantine.column("source").to_pylist(), quarantine.column("reason").to_pylist()))
    label_file = "basic/EmoLabel/list_patition_label.txt"
    assert got == {
        "basic/Image/aligned/holiday.jpg": "bad_name",
        "basic/Image/aligned/train_00003_aligned.jpg": "unknown_label",
        f"{label_file}#line=6": "missing_image",
        f"{label_file}#line=7": "malformed_line",
        f"{label_file}#line=9": "duplicate_id",
        "basic/Image/aligned/train_00009_aligned.jpg": "unlabelled",
    }
    assert summary["per_source_split"] == {"test": 2, "train": 2}


def test_rafdb_original_variant(tmp_path):
    raf(tmp_path / "rafdb")
    summary, manifest, quarantine = ingest("rafdb", tmp_path / "rafdb", tmp_path / "out", variant="original")
    check_accounting(summary, manifest, quarantine, 6 + 3)
    assert manifest.column("image_id").to_pylist() == ["rafdb/train_00001", "rafdb/train_00002", "rafdb/test_0001"]
    assert set(zip(manifest.column("width").to_pylist(), manifest.column("height").to_pylist())) == {(160, 120)}
    assert reasons(quarantine) == {"unknown_label": 1, "missing_image": 1, "malformed_line": 1,
                                   "duplicate_id": 1, "unlabelled": 1, "truncated": 1}
    assert summary["variant"] == "original"


def test_rafdb_without_basic_level_and_errors(tmp_path):
    raf(tmp_path / "r")
    flat = tmp_path / "r" / "basic"
    summary, _, _ = ingest("rafdb", flat, tmp_path / "out")
    assert summary["kept"] == 4 and summary["label_file"] == "EmoLabel/list_patition_label.txt"
    with pytest.raises(LayoutError, match="EmoLabel/list_patition_label.txt not found"):
        ingest("rafdb", tmp_path, tmp_path / "out2")
    with pytest.raises(ValueError, match="variant: 'big' is not one of aligned, original"):
        ingest("rafdb", flat, tmp_path / "out3", variant="big")
    import shutil
    shutil.rmtree(flat / "Image" / "original")
    with pytest.raises(LayoutError, match="Image/original not found"):
        ingest("rafdb", flat, tmp_path / "out4", variant="original")
