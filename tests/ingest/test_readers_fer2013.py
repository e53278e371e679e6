"""FER2013 reader: every CSV variant, agreement with torchvision, and each bad row accounted for."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ingest_helpers import check_accounting, decoded, ingest, pixels, reasons
from pipeline.core.labels import to_unified
from pipeline.ingest.readers import LayoutError

SPLITS = ["Training"] * 14 + ["PublicTest"] * 5 + ["PrivateTest"] * 5


def rows(n: int = len(SPLITS)) -> list[dict]:
    """n distinct labelled rows over the three Usage values; every code 0..6 occurs."""
    return [{"emotion": str(i % 7), "pixels": " ".join(map(str, pixels(100 + i).ravel())), "Usage": SPLITS[i]}
            for i in range(n)]


def write_variant(folder: Path, variant: str, data: list[dict]) -> None:
    """Write ``data`` as one of the native files: fer2013.csv, icml_face_data.csv, or train.csv + test.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    if variant == "fer2013":
        with open(folder / "fer2013.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["emotion", "pixels", "Usage"])
            w.writerows([r["emotion"], r["pixels"], r["Usage"]] for r in data)
    elif variant == "icml":
        with open(folder / "icml_face_data.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["emotion", " Usage", " pixels"])
            w.writerows([r["emotion"], r["Usage"], r["pixels"]] for r in data)
    else:
        with open(folder / "train.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["emotion", "pixels"])
            w.writerows([r["emotion"], r["pixels"]] for r in data if r["Usage"] == "Training")
        with open(folder / "test.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["pixels"])
            w.writerows([r["pixels"]] for r in data if r["Usage"] != "Training")


@pytest.mark.parametrize("variant", ["fer2013", "icml", "kaggle"])
def test_agrees_with_torchvision(tmp_path, monkeypatch, variant):
    """Image for image and label for label the same as torchvision.datasets.FER2013 (md5 check bypassed)."""
    import torchvision.datasets.fer2013 as tv_fer

    monkeypatch.setattr(tv_fer, "check_integrity", lambda *a, **k: True)
    data = rows()
    write_variant(tmp_path / "fer2013", variant, data)
    summary, manifest, quarantine = ingest("fer2013", tmp_path / "fer2013", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, len(data))
    m = manifest.to_pylist()
    for split, usages in (("train", {"Training"}), ("test", {"PublicTest", "PrivateTest"})):
        tv = tv_fer.FER2013(str(tmp_path), split=split)
        tv_items = [tv[i] for i in range(len(tv))]
        if variant == "kaggle" and split == "test":
            assert all(label is None for _, label in tv_items)  # Kaggle test.csv has no labels ...
            assert reasons(quarantine) == {"unlabelled": len(tv_items)}  # ... so all are accounted as such
            continue
        ours = [r for r in m if r["source_split"] in usages]
        assert len(ours) == len(tv_items) > 0
        for row, (img, label) in zip(ours, tv_items):
            assert np.array_equal(decoded(row["image"]), np.asarray(img))
            assert row["label"] == to_unified("fer2013", label)
            assert (row["width"], row["height"], row["channels"]) == (48, 48, 1)


def test_rows_ids_and_sources(tmp_path):
    data = rows(3)
    write_variant(tmp_path, "icml", data)
    summary, manifest, _ = ingest("fer2013", tmp_path, tmp_path / "out")
    r = manifest.to_pylist()
    assert [x["image_id"] for x in r] == ["fer2013/row000001", "fer2013/row000002", "fer2013/row000003"]
    assert [x["source"] for x in r] == ["icml_face_data.csv#row=1", "icml_face_data.csv#row=2",
                                        "icml_face_data.csv#row=3"]
    assert [x["native_label"] for x in r] == ["0", "1", "2"]
    assert [x["label_name"] for x in r] == ["anger", "disgust", "fear"]
    assert all(x["subject"] is None for x in r)
    assert summary["layout"] == "icml_face_data.csv" and summary["files"] == ["icml_face_data.csv"]


def test_bad_rows_are_quarantined_with_reasons(tmp_path):
    data = rows(8)
    good = data[0]["pixels"]
    lines = [
        "emotion,pixels,Usage",
        f"{data[0]['emotion']},{good},Training",                  # row 1 kept
        f"{data[1]['emotion']},{data[1]['pixels']},PublicTest",   # row 2 kept
        f"3,{' '.join(good.split()[:-1])},Training",              # row 3 wrong_pixel_count (2303)
        f"9,{data[2]['pixels']},Training",                        # row 4 unknown_label
        f"4,{good},PrivateTest",                                  # row 5 duplicate of row 1
        f"2,{data[3]['pixels'].replace(' ', ' x', 1)},Training",  # row 6 bad_pixels
        f"2,{data[4]['pixels']},Validation",                      # row 7 unknown_split
        f"5,{data[5]['pixels']},Training,extra",                  # row 8 malformed (4 fields)
        f"6,{' '.join(data[6]['pixels'].split()[:100])}",         # row 9 truncated trailing line
    ]
    (tmp_path / "fer2013.csv").write_text("\n".join(lines))
    summary, manifest, quarantine = ingest("fer2013", tmp_path, tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 9)
    assert manifest.column("source").to_pylist() == ["fer2013.csv#row=1", "fer2013.csv#row=2"]
    got = dict(zip(quarantine.column("source").to_pylist(), quarantine.column("reason").to_pylist()))
    assert got == {
        "fer2013.csv#row=3": "wrong_pixel_count", "fer2013.csv#row=4": "unknown_label",
        "fer2013.csv#row=5": "duplicate", "fer2013.csv#row=6": "bad_pixels",
        "fer2013.csv#row=7": "unknown_split", "fer2013.csv#row=8": "malformed_row",
        "fer2013.csv#row=9": "malformed_row",
    }
    details = dict(zip(quarantine.column("source").to_pylist(), quarantine.column("detail").to_pylist()))
    assert "2303 pixel values, expected 2304" in details["fer2013.csv#row=3"]
    assert "fer2013/row000001" in details["fer2013.csv#row=5"]
    assert all(d.startswith(s) for s, d in details.items())  # every detail names its row


def test_duplicates_kept_when_disabled(tmp_path):
    data = rows(2)
    data[1]["pixels"] = data[0]["pixels"]
    write_variant(tmp_path, "fer2013", data)
    summary, manifest, quarantine = ingest("fer2013", tmp_path, tmp_path / "out", drop_duplicates=False)
    check_accounting(summary, manifest, quarantine, 2)
    assert manifest.num_rows == 2 and summary["duplicates_kept"] == 1


def test_precedence_and_choice(tmp_path):
    data = rows()
    for v in ("fer2013", "icml", "kaggle"):
        write_variant(tmp_path, v, data)
    summary, manifest, _ = ingest("fer2013", tmp_path, tmp_path / "a")
    assert summary["files"] == ["fer2013.csv"]
    assert summary["ignored"]["examples"] == ["icml_face_data.csv", "train.csv", "test.csv"]
    assert manifest.num_rows == len(data)
    summary, manifest, quarantine = ingest("fer2013", tmp_path, tmp_path / "b", file="train.csv")
    assert summary["files"] == ["train.csv", "test.csv"]
    assert manifest.num_rows == 14 and reasons(quarantine) == {"unlabelled": 10}
    assert manifest.column("image_id").to_pylist()[0] == "fer2013/train/row000001"
    assert set(manifest.column("source_split").to_pylist()) == {"Training"}
    with pytest.raises(ValueError, match="'no_such.csv' is not one of auto"):
        ingest("fer2013", tmp_path, tmp_path / "c", file="no_such.csv")
    (tmp_path / "icml_face_data.csv").unlink()
    with pytest.raises(LayoutError, match="icml_face_data.csv .chosen by ingest.fer2013.file. not found"):
        ingest("fer2013", tmp_path, tmp_path / "c", file="icml_face_data.csv")


def test_layout_errors_name_the_path(tmp_path):
    with pytest.raises(LayoutError, match=f"{tmp_path / 'missing'}: raw root does not exist.*fer2013.csv"):
        ingest("fer2013", tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="none of fer2013.csv"):
        ingest("fer2013", tmp_path / "empty", tmp_path / "out")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "fer2013.csv").write_text("label,data,split\n1,2,3\n")
    with pytest.raises(LayoutError, match="lacks column.*pixels, emotion"):
        ingest("fer2013", tmp_path / "bad", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreadable_csv_names_file_and_line(tmp_path):
    data = rows(2)
    runaway = '1,"' + "7 " * 70000 + ",Training\n"  # an unclosed quote swallows the rest: > csv's field limit
    (tmp_path / "fer2013.csv").write_text(f"emotion,pixels,Usage\n0,{data[0]['pixels']},Training\n{runaway}")
    with pytest.raises(ValueError, match=r"fer2013.csv: after line 2: not readable as CSV .field larger than field limit"):
        ingest("fer2013", tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, reason", [
    ("", "wrong_pixel_count"), ("   ", "wrong_pixel_count"), ("1 2 3", "wrong_pixel_count"),
    ("1 2 3 4 5", "wrong_pixel_count"), ("1 2 3 x", "bad_pixels"), ("1 2.5 3 4", "bad_pixels"),
    ("1 2 3 256", "bad_pixels"), ("1 -2 3 4", "bad_pixels"), ("1,2,3,4", "bad_pixels"),
])
def test_pixel_string_errors(text, reason):
    from pipeline.ingest.readers.decode import DecodeError, decode_pixel_string

    with pytest.raises(DecodeError) as info:
        decode_pixel_string(text, (2, 2), "fer2013.csv#row=7")
    assert info.value.reason == reason and info.value.detail.startswith("fer2013.csv#row=7: ")


@pytest.mark.parametrize("text", ["0 1 254 255", " 0 1 254 255", "0  1\t254 255 \n"])
def test_pixel_string_whitespace_like_str_split(text):
    from pipeline.ingest.readers.decode import decode_pixel_string

    assert decode_pixel_string(text, (2, 2), "x").tolist() == [[0, 1], [254, 255]]
