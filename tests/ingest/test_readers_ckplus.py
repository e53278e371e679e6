"""CK+ reader: official layout (frame selection, labels), CK+48 layout, bad inputs, the real dev set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ingest_helpers import (
    check_accounting, decoded, ingest, reasons, write_empty, write_image, write_truncated,
)
from pipeline.ingest.readers import LayoutError, get_reader


def frame(root: Path, subject: str, seq: str, n: int, seed: int, **kw) -> np.ndarray:
    return write_image(root / "cohn-kanade-images" / subject / seq / f"{subject}_{seq}_{n:08d}.png", seed, **kw)


def emotion(root: Path, subject: str, seq: str, n: int, text: str) -> None:
    p = root / "Emotion" / subject / seq / f"{subject}_{seq}_{n:08d}_emotion.txt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.fixture
def official(tmp_path) -> Path:
    """Sequences: S005/001 (6 frames, disgust), S005/002 (unlabelled, 2 frames), S010/001 (3 frames, anger,
    one colour frame), S010/002 (2 frames, label code 9), S011/001 (4 frames, happy, one empty and one
    truncated frame), a misplaced file and a .DS_Store."""
    root = tmp_path / "ck"
    for i in range(1, 7):
        frame(root, "S005", "001", i, seed=i)
    emotion(root, "S005", "001", 6, "   3.0000000e+00\n")
    frame(root, "S005", "002", 1, seed=20)
    frame(root, "S005", "002", 2, seed=21)
    frame(root, "S010", "001", 1, seed=30)
    frame(root, "S010", "001", 2, seed=31)
    frame(root, "S010", "001", 3, seed=32, channels=3)
    emotion(root, "S010", "001", 3, "1.0000000e+00")
    frame(root, "S010", "002", 1, seed=40)
    frame(root, "S010", "002", 2, seed=41)
    emotion(root, "S010", "002", 2, "9.0000000e+00")
    frame(root, "S011", "001", 1, seed=50)
    write_empty(root / "cohn-kanade-images/S011/001/S011_001_00000002.png")
    write_truncated(root / "cohn-kanade-images/S011/001/S011_001_00000003.png", seed=52)
    frame(root, "S011", "001", 4, seed=53)
    emotion(root, "S011", "001", 4, "5.0000000e+00")
    write_image(root / "cohn-kanade-images/S011/001/stray.png", seed=60)
    (root / "cohn-kanade-images/S005/.DS_Store").write_bytes(b"\0\1")
    return root


def test_official_layout_selection_and_accounting(official, tmp_path):
    summary, manifest, quarantine = ingest("ckplus", official, tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 6 + 2 + 3 + 2 + 4 + 1)
    assert summary["layout"] == "official"
    rows = {r["image_id"]: r for r in manifest.to_pylist()}
    # S005/001: last 3 frames disgust (4, 5, 6), first frame neutral, frames 2-3 not selected
    assert {k: r["label_name"] for k, r in rows.items() if k.startswith("ckplus/S005_001")} == {
        "ckplus/S005_001_00000001": "neutral", "ckplus/S005_001_00000004": "disgust",
        "ckplus/S005_001_00000005": "disgust", "ckplus/S005_001_00000006": "disgust"}
    # S010/001 has only 3 frames: all three are the peak, no frame left for neutral
    assert {k: r["label_name"] for k, r in rows.items() if k.startswith("ckplus/S010")} == {
        f"ckplus/S010_001_0000000{i}": "anger" for i in (1, 2, 3)}
    # S011/001: frames 2 (empty) and 3 (truncated) are quarantined; 1 neutral, 4 happiness
    assert {k: r["label_name"] for k, r in rows.items() if k.startswith("ckplus/S011")} == {
        "ckplus/S011_001_00000001": "neutral", "ckplus/S011_001_00000004": "happiness"}
    assert reasons(quarantine) == {"frame_not_selected": 2, "unlabelled_sequence": 2, "unknown_label": 2,
                                   "empty_file": 1, "truncated": 1, "bad_name": 1}
    r = rows["ckplus/S005_001_00000006"]
    assert (r["subject"], r["native_label"], r["source"], r["label"]) == (
        "S005", "3", "cohn-kanade-images/S005/001/S005_001_00000006.png", 3)
    assert json.loads(r["extra"]) == {"frame": 6, "layout": "official", "role": "peak", "sequence": "S005_001"}
    assert rows["ckplus/S005_001_00000001"]["native_label"] == "0"
    assert rows["ckplus/S010_001_00000003"]["channels"] == 3
    assert rows["ckplus/S005_001_00000001"]["channels"] == 1
    q = dict(zip(quarantine.column("source").to_pylist(), quarantine.column("detail").to_pylist()))
    assert "unknown label code '9'" in q["cohn-kanade-images/S010/002/S010_002_00000001.png"]
    assert "0 bytes" in q["cohn-kanade-images/S011/001/S011_001_00000002.png"]
    assert "ignored" not in summary  # .DS_Store is hidden, not an input


def test_frame_selection_is_a_parameter(official, tmp_path):
    summary, manifest, _ = ingest("ckplus", official, tmp_path / "out", peak_frames=1, neutral_frames=2)
    labels = {r["image_id"]: r["label_name"] for r in manifest.to_pylist() if r["subject"] == "S005"}
    assert labels == {"ckplus/S005_001_00000001": "neutral", "ckplus/S005_001_00000002": "neutral",
                      "ckplus/S005_001_00000006": "disgust"}
    # not selected: S005/001 frames 3-5; S010/001 none (1-2 neutral, 3 peak); S011/001 frame 3
    assert summary["per_reason"]["frame_not_selected"] == 3 + 0 + 1
    assert "truncated" not in summary["per_reason"]  # the truncated frame 3 is not selected, so not decoded
    with pytest.raises(ValueError, match="peak_frames must be >= 1"):
        ingest("ckplus", official, tmp_path / "out2", peak_frames=0)


def test_frames_sorted_by_number(tmp_path):
    """Frame 10 sorts after frame 9 (numeric order, not the order the file system lists them)."""
    root = tmp_path / "ck"
    for i in (10, 9, 1, 2, 11):
        frame(root, "S001", "001", i, seed=i)
    emotion(root, "S001", "001", 11, "7.0")
    _, manifest, _ = ingest("ckplus", root, tmp_path / "out", peak_frames=2, neutral_frames=1)
    assert manifest.column("image_id").to_pylist() == [
        "ckplus/S001_001_00000001", "ckplus/S001_001_00000010", "ckplus/S001_001_00000011"]
    assert manifest.column("label_name").to_pylist() == ["neutral", "surprise", "surprise"]


def ck48(root: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for i, (cls, name) in enumerate([("anger", "S010_004_00000017"), ("anger", "S010_004_00000018"),
                                     ("happy", "S011_006_00000010"), ("surprise", "S014_001_00000029"),
                                     ("neutral", "S014_001_00000001")]):
        arrays[name] = write_image(root / cls / f"{name}.png", seed=i)
    write_image(root / "joy" / "S020_001_00000010.png", seed=10)          # unknown class folder
    write_image(root / "happy" / "IMG_0001.png", seed=11)                 # bad name
    write_image(root / "sadness" / "S022_001_00000001.png", seed=0)       # same pixels as the first anger
    write_image(root / "fear" / "S010_004_00000018.png", seed=12)         # same id as an anger image
    write_image(root / "loose.png", seed=13)                              # not in a class folder
    (root / "readme.txt").write_text("CK+48")
    return arrays


def test_ck48_layout(tmp_path):
    root = tmp_path / "CK+48"
    arrays = ck48(root)
    summary, manifest, quarantine = ingest("ckplus", root, tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 10)
    assert summary["layout"] == "ck+48"
    assert summary["ignored"]["examples"] == ["readme.txt"]
    rows = manifest.to_pylist()
    assert [r["image_id"] for r in rows] == ["ckplus/S010_004_00000017", "ckplus/S010_004_00000018",
                                            "ckplus/S011_006_00000010", "ckplus/S014_001_00000001",
                                            "ckplus/S014_001_00000029"]
    assert [r["label_name"] for r in rows] == ["anger", "anger", "happiness", "neutral", "surprise"]
    assert [r["native_label"] for r in rows] == ["anger", "anger", "happy", "neutral", "surprise"]
    assert [r["subject"] for r in rows] == ["S010", "S010", "S011", "S014", "S014"]
    for r in rows:
        assert np.array_equal(decoded(r["image"]), arrays[r["image_id"].split("/")[1]])
    got = dict(zip(quarantine.column("source").to_pylist(), quarantine.column("reason").to_pylist()))
    assert got == {"joy/S020_001_00000010.png": "unknown_label", "happy/IMG_0001.png": "bad_name",
                   "sadness/S022_001_00000001.png": "duplicate", "fear/S010_004_00000018.png": "duplicate_id",
                   "loose.png": "bad_name"}


def test_ck48_class_folders_in_other_case_or_by_unified_name(tmp_path):
    """Copies of CK+48 spell the folders differently: ``Anger``, ``HAPPY``, ``happiness``, ``Sadness``."""
    root = tmp_path / "ck48"
    for i, (folder, name) in enumerate([("Anger", "S010_004_00000017"), ("HAPPY", "S011_006_00000010"),
                                        ("happiness", "S012_002_00000009"), ("Sadness", "S013_001_00000005"),
                                        ("Joy", "S014_001_00000003")]):
        write_image(root / folder / f"{name}.png", seed=i)
    summary, manifest, quarantine = ingest("ckplus", root, tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 5)
    assert summary["layout"] == "ck+48"
    rows = {r["subject"]: (r["native_label"], r["label_name"]) for r in manifest.to_pylist()}
    assert rows == {"S010": ("Anger", "anger"), "S011": ("HAPPY", "happiness"),
                    "S012": ("happiness", "happiness"), "S013": ("Sadness", "sadness")}
    assert quarantine.column("reason").to_pylist() == ["unknown_label"]
    assert "Joy" in quarantine.column("detail").to_pylist()[0]


def test_layout_errors(tmp_path):
    with pytest.raises(LayoutError, match="does not exist.*cohn-kanade-images.*anger contempt"):
        get_reader("ckplus").scan(tmp_path / "nope", {})
    (tmp_path / "x" / "images").mkdir(parents=True)
    with pytest.raises(LayoutError, match=f"{tmp_path / 'x'}: neither cohn-kanade-images/ nor any CK\\+48"):
        get_reader("ckplus").scan(tmp_path / "x", {})
    (tmp_path / "y" / "cohn-kanade-images").mkdir(parents=True)
    with pytest.raises(LayoutError, match="no Emotion/ folder"):
        get_reader("ckplus").scan(tmp_path / "y", {})


@pytest.mark.realdata
def test_real_ckplus48_dev_set(realdata, tmp_path):
    """The real CK+48 dev subset (read in place, never copied): 459 images, 58 subjects, exact class counts."""
    root = realdata / "ckplus48-dev"
    if not root.is_dir():
        pytest.skip("ckplus48-dev not present")
    summary, manifest, quarantine = ingest("ckplus", root, tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 459)
    assert summary["kept"] == 459 and summary["quarantined"] == 0
    assert len(set(manifest.column("subject").to_pylist())) == 58
    assert summary["per_class"] == {"anger": 63, "contempt": 27, "disgust": 87, "fear": 30,
                                    "happiness": 96, "sadness": 39, "surprise": 117}
    assert set(manifest.column("channels").to_pylist()) == {1}
