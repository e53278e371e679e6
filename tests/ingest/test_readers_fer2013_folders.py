"""FER2013's image-folder edition (train/<class>/Training_<n>.jpg, test/<class>/PublicTest_<n>.jpg ...):
detection beside the CSV layouts, the official Usage from the file name, and every bad file accounted for."""

from __future__ import annotations

import numpy as np
import pytest

from ingest_helpers import check_accounting, decoded, ingest, reasons, write_empty, write_image, write_truncated
from pipeline.core.labels import LABEL_INDEX
from pipeline.ingest.readers import LayoutError
from pipeline.synthetic import write_dataset

FOLDERS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness", "neutral": "neutral",
           "sad": "sadness", "surprise": "surprise"}


def edition(root, private: bool = True) -> dict[str, np.ndarray]:
    """Two images per class in train/, one PublicTest and (``private``) one PrivateTest per class in test/;
    returns relative path -> pixels."""
    written, seed = {}, 0
    for folder in FOLDERS:
        names = [f"train/{folder}/Training_{seed}.png", f"train/{folder}/Training_{seed + 1}.png",
                 f"test/{folder}/PublicTest_{seed + 2}.png"] + ([f"test/{folder}/PrivateTest_{seed + 3}.png"] if private else [])
        for rel in names:  # PNG: lossless, so pixels can be compared exactly
            written[rel] = write_image(root / rel, seed)
            seed += 1
    return written


def test_every_image_kept_with_label_usage_and_provenance(tmp_path):
    written = edition(tmp_path / "raw")
    summary, manifest, quarantine = ingest("fer2013", tmp_path / "raw", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, len(written))
    assert summary["layout"] == "folders" and summary["folders"] == ["test", "train"]
    assert summary["per_source_split"] == {"PrivateTest": 7, "PublicTest": 7, "Training": 14}
    for row in manifest.to_pylist():
        part, folder, name = row["source"].split("/")
        assert row["image_id"] == f"fer2013/{row['source'].rsplit('.', 1)[0]}"
        assert row["label"] == LABEL_INDEX[FOLDERS[folder]] and row["native_label"] == folder
        assert row["source_split"] == name.split("_")[0]
        assert row["subject"] is None
        assert np.array_equal(decoded(row["image"]), written[row["source"]])


def test_usage_from_the_name_wins_over_the_folder_and_any_case_is_read(tmp_path):
    raw = tmp_path / "raw"
    write_image(raw / "Train" / "HAPPY" / "training_1.jpg", 1)
    write_image(raw / "Train" / "Sad" / "PublicTest_2.jpg", 2)      # a PublicTest file in train/: its name says so
    write_image(raw / "Test" / "neutral" / "img_3.jpg", 3)          # no prefix: the folder's name
    write_image(raw / "Train" / "angry" / "4.jpg", 4)
    summary, manifest, quarantine = ingest("fer2013", raw, tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 4)
    got = {r["source"]: (r["label_name"], r["source_split"]) for r in manifest.to_pylist()}
    assert got == {"Train/HAPPY/training_1.jpg": ("happiness", "Training"),
                   "Train/Sad/PublicTest_2.jpg": ("sadness", "PublicTest"),
                   "Test/neutral/img_3.jpg": ("neutral", "test"),
                   "Train/angry/4.jpg": ("anger", "train")}


def test_bad_files_are_quarantined_or_listed_with_reasons(tmp_path):
    raw = tmp_path / "raw"
    edition(raw, private=False)
    write_truncated(raw / "train" / "fear" / "Training_900.png", 900)
    write_empty(raw / "test" / "sad" / "PublicTest_901.jpg")
    write_image(raw / "train" / "contempt" / "Training_902.png", 902)          # no such FER2013 class
    write_image(raw / "train" / "happy" / "more" / "Training_903.png", 903)    # one folder too deep
    write_image(raw / "train" / "happy" / "Training_904.png", 0)               # the same pixels as another file
    (raw / "train" / "happy" / "notes.txt").write_text("not an image")
    summary, manifest, quarantine = ingest("fer2013", raw, tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 21 + 5)
    got = dict(zip(quarantine.column("source").to_pylist(), quarantine.column("reason").to_pylist()))
    assert got["train/contempt/Training_902.png"] == "unknown_label"
    assert got["train/happy/more/Training_903.png"] == "bad_name"
    assert got["test/sad/PublicTest_901.jpg"] == "empty_file"
    assert got["train/fear/Training_900.png"] not in ("", None)
    assert reasons(quarantine)["duplicate"] == 1
    details = dict(zip(quarantine.column("source").to_pylist(), quarantine.column("detail").to_pylist()))
    assert all(d.startswith(s) for s, d in details.items() if got[s] != "duplicate")  # every detail names its file
    assert summary["ignored"]["examples"] == ["train/happy/notes.txt"]


def test_duplicates_kept_as_the_papers_do(tmp_path):
    raw = tmp_path / "raw"
    edition(raw, private=False)
    write_image(raw / "test" / "happy" / "PublicTest_904.png", 0)  # the pixels of train/angry/Training_0.png
    summary, manifest, quarantine = ingest("fer2013", raw, tmp_path / "out", drop_duplicates=False)
    check_accounting(summary, manifest, quarantine, 22)
    assert len(quarantine) == 0 and summary["duplicates_kept"] == 1


def test_csv_first_under_auto_and_folders_when_chosen(tmp_path):
    raw = tmp_path / "raw"
    write_dataset("fer2013", raw, per_class=3, files=["fer2013", "folders"])
    summary, manifest, _ = ingest("fer2013", raw, tmp_path / "csv")
    assert summary["layout"] == "fer2013.csv" and "train" in summary["ignored"]["examples"]
    by_folders, manifest2, _ = ingest("fer2013", raw, tmp_path / "folders", file="folders")
    assert by_folders["layout"] == "folders" and by_folders["ignored"]["examples"] == ["fer2013.csv"]
    assert by_folders["per_class"] == summary["per_class"]
    assert by_folders["per_source_split"] == summary["per_source_split"]


def test_no_class_folder_is_a_layout_error(tmp_path):
    (tmp_path / "raw" / "train" / "faces").mkdir(parents=True)
    with pytest.raises(LayoutError, match=r"train/<class>/ or test/<class>/ found.*folders: <root>/train/<class>"):
        ingest("fer2013", tmp_path / "raw", tmp_path / "out")
    with pytest.raises(LayoutError, match="chosen by ingest.fer2013.file: folders"):
        ingest("fer2013", tmp_path / "raw", tmp_path / "out", file="folders")
