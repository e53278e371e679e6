"""Trust nothing that was not verified (issue #27): hostile images, text encodings, label codes, and
quarantine details that do not depend on where the raw data lies. Every hostile input is built here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingest_helpers import (
    PARAMS, check_accounting, decoded, ingest, reasons, write_empty, write_flat_jpeg, write_image,
    write_png_bomb, write_truncated,
)
from pipeline import cli
from pipeline.core import params
from pipeline.ingest import format_summary
from pipeline.ingest.readers import LayoutError

FILES = ("manifest.parquet", "quarantine.parquet", "summary.json")


def ck48_tree(root: Path, n: int = 4) -> list[str]:
    """``n`` small kept CK+48 images (anger, subjects S010...); their relative paths."""
    rels = []
    for i in range(n):
        rel = f"anger/S{10 + i:03d}_001_00000001.png"
        write_image(root / rel, seed=i)
        rels.append(rel)
    return rels


def quarantine_rows(quarantine) -> dict[str, tuple[str, str]]:
    """source -> (reason, detail)."""
    return {r["source"]: (r["reason"], r["detail"]) for r in quarantine.to_pylist()}


# 1. hostile images ---------------------------------------------------------------------------------

def test_decompression_bomb_is_quarantined_and_the_rest_kept(tmp_path, monkeypatch):
    root = tmp_path / "ck48"
    kept = ck48_tree(root)
    bomb = "happy/S020_001_00000001.png"
    write_png_bomb(root / bomb, side=20000)
    assert (root / bomb).stat().st_size < 60_000  # 49 KB declaring 400 million pixels
    summary, manifest, quarantine = ingest("ckplus", root, tmp_path / "out")
    check_accounting(summary, manifest, quarantine, len(kept) + 1)
    assert summary["kept"] == len(kept)
    reason, detail = quarantine_rows(quarantine)[bomb]
    assert reason == "decompression_bomb"
    assert detail.startswith(f"{bomb}: ") and "\n" not in detail
    assert "400000000 pixels" in detail
    # where PIL's own limit is lifted, the header check against ingest.max_pixels still refuses it
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    summary, _, quarantine = ingest("ckplus", root, tmp_path / "out2")
    assert summary["kept"] == len(kept) and reasons(quarantine) == {"too_large": 1}
    assert quarantine_rows(quarantine)[bomb][1] == (f"{bomb}: header declares 20000x20000 = 400,000,000 pixels, "
                                                    f"over ingest.max_pixels 50,000,000; not decoded")


def test_huge_photo_over_max_pixels_is_quarantined_before_decoding(tmp_path, monkeypatch):
    """An 8000x8000 JPEG (64 MP) is over the default 50 MP: refused from its header, never decoded."""
    from pipeline.ingest.readers import decode

    root = tmp_path / "ck48"
    kept = ck48_tree(root, 2)
    big = "happy/S030_001_00000001.png"
    write_flat_jpeg(root / big, (8000, 8000))  # JPEG bytes under .png: PIL reads by content
    seen = []
    real = decode._to_uint8_array
    monkeypatch.setattr(decode, "_to_uint8_array", lambda img: seen.append(img.size) or real(img))
    summary, manifest, quarantine = ingest("ckplus", root, tmp_path / "out")
    check_accounting(summary, manifest, quarantine, len(kept) + 1)
    reason, detail = quarantine_rows(quarantine)[big]
    assert reason == "too_large"
    assert detail == (f"{big}: header declares 8000x8000 = 64,000,000 pixels, over ingest.max_pixels "
                      f"50,000,000; not decoded")
    assert (8000, 8000) not in seen and len(seen) == len(kept)


def test_large_jpeg_is_downscaled_while_decoding_and_recorded(tmp_path, monkeypatch):
    """Allowed by max_pixels, over max_side: decoded at 1/8 scale (draft), stored at max_side, small row."""
    from pipeline.ingest.readers import decode

    root = tmp_path / "ck48"
    kept = ck48_tree(root, 2)
    big = "happy/S030_001_00000001.png"
    write_flat_jpeg(root / big, (8000, 8000), colour=200)
    seen = []
    real = decode._to_uint8_array
    monkeypatch.setattr(decode, "_to_uint8_array", lambda img: seen.append(img.size) or real(img))
    summary, manifest, quarantine = ingest("ckplus", root, tmp_path / "out", max_pixels=100_000_000, max_side=512)
    check_accounting(summary, manifest, quarantine, len(kept) + 1)
    assert summary["kept"] == len(kept) + 1 and summary["downscaled"] == 1
    assert "downscaled 1 large image(s) to ingest.max_side" in format_summary(summary)
    assert (1000, 1000) in seen and (8000, 8000) not in seen  # JPEG draft: never the full 64 MP in memory
    row = next(r for r in manifest.to_pylist() if r["source"] == big)
    assert (row["width"], row["height"], row["channels"]) == (512, 512, 1)
    assert json.loads(row["extra"])["downscaled_from"] == [8000, 8000]
    assert len(row["image"]) < 10_000  # not a ~64 MB (grey) / ~192 MB (colour) row
    pixels = decoded(row["image"])
    assert pixels.shape == (512, 512) and abs(int(pixels.mean()) - 200) <= 1
    small = [r for r in manifest.to_pylist() if r["source"] != big]
    assert all("downscaled_from" not in json.loads(r["extra"]) for r in small)
    assert {(r["width"], r["height"]) for r in small} == {(48, 48)}  # under max_side: stored as they are


def test_downscale_keeps_aspect_orientation_and_non_jpeg(tmp_path):
    from pipeline.ingest.readers.decode import read_image

    write_flat_jpeg(tmp_path / "rotated.jpg", (3000, 1000), exif_orientation=6)  # displayed 1000 wide, 3000 high
    arr, original = read_image(tmp_path / "rotated.jpg", "rotated.jpg", max_side=600)
    assert arr.shape == (600, 200) and original == (1000, 3000)
    write_image(tmp_path / "wide.png", seed=1, size=(1200, 800), channels=3)
    arr, original = read_image(tmp_path / "wide.png", "wide.png", max_side=300)
    assert arr.shape == (200, 300, 3) and original == (1200, 800)
    arr, original = read_image(tmp_path / "wide.png", "wide.png", max_side=0)  # 0: never downscale
    assert arr.shape == (800, 1200, 3) and original is None
    arr, original = read_image(tmp_path / "wide.png", "wide.png", max_side=1200)  # exactly max_side: as it is
    assert arr.shape == (800, 1200, 3) and original is None


def test_default_limits_keep_every_real_dataset_image():
    """FER2013 48x48, CK+ 640x490, JAFFE 256x256, RAF-DB 100x100 aligned and photos of a few thousand px,
    KDEF 562x762: none is refused by the default max_pixels; all but large photos are stored as they are."""
    from pipeline.ingest.readers.decode import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, fit_size

    cfg = params.section("ingest", "rafdb", path=PARAMS)
    assert (cfg["max_pixels"], cfg["max_side"]) == (DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE)
    for w, h in [(48, 48), (640, 490), (256, 256), (100, 100), (562, 762)]:
        assert w * h <= cfg["max_pixels"] and fit_size(w, h, cfg["max_side"]) is None
    for w, h in [(4000, 3000), (6000, 4000), (8000, 6000)]:  # large photos: kept, downscaled
        assert w * h <= cfg["max_pixels"] and max(fit_size(w, h, cfg["max_side"])) == cfg["max_side"]


@pytest.mark.parametrize("key, value", [("max_side", 0), ("max_side", -1), ("max_pixels", 0)])
def test_limits_below_one_are_refused(tmp_path, capsys, key, value):
    """The params schema refuses them before anything is read: one line naming the key, no output."""
    import yaml

    root = tmp_path / "ck48"
    ck48_tree(root, 1)
    doc = yaml.safe_load(PARAMS.read_text())
    doc["ingest"]["defaults"][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc))
    code = cli.main(["ingest", "ckplus", "--raw", str(root), "--out", str(tmp_path / "out"),
                     "--params", str(tmp_path / "params.yaml"), "--no-prefect"])
    err = capsys.readouterr().err
    assert code == 2 and f"ingest.defaults.{key}: input should be greater than or equal to 1, got {value}" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# 2. text encodings ---------------------------------------------------------------------------------

def rafdb_tree(root: Path, label_bytes: bytes) -> None:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_bytes(label_bytes)
    for i, stem in enumerate(["train_00001", "train_00002", "test_0001"]):
        write_image(root / "Image" / "aligned" / f"{stem}_aligned.png", seed=i, size=(100, 100), channels=3)
    for p in sorted((root / "Image" / "aligned").glob("*.png")):
        p.rename(p.with_suffix(".jpg"))


RAF_LINES = "train_00001.jpg 5\ntrain_00002.jpg 1\ntest_0001.jpg 4\n"


def test_rafdb_label_file_with_bom(tmp_path):
    rafdb_tree(tmp_path / "raf", b"\xef\xbb\xbf" + RAF_LINES.encode())
    summary, manifest, quarantine = ingest("rafdb", tmp_path / "raf", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 3)
    assert summary["kept"] == 3 and quarantine.num_rows == 0
    assert manifest.column("image_id").to_pylist()[0] == "rafdb/train_00001"


@pytest.mark.parametrize("data, where", [
    (RAF_LINES.encode("utf-16"), "line 1: starts with a UTF-16 byte-order mark"),
    (RAF_LINES.encode("utf-16-le"), "line 1: NUL byte at byte 2"),
    (RAF_LINES.replace("train_00002", "train_0000\xe9").encode("latin-1"), "line 2: byte 0xe9 at byte 11 is not UTF-8"),
])
def test_rafdb_label_file_not_utf8_names_file_and_line(tmp_path, data, where):
    rafdb_tree(tmp_path / "raf", data)
    with pytest.raises(ValueError) as info:
        ingest("rafdb", tmp_path / "raf", tmp_path / "out")
    assert not isinstance(info.value, UnicodeDecodeError)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'raf' / 'EmoLabel' / 'list_patition_label.txt'}: {where}")
    assert "\n" not in message and not (tmp_path / "out").exists()


def fer_csv(n: int = 6) -> str:
    from ingest_helpers import pixels

    lines = ["emotion,pixels,Usage"]
    lines += [f"{i % 7},{' '.join(map(str, pixels(200 + i).ravel()))},Training" for i in range(n)]
    return "\n".join(lines) + "\n"


def test_fer2013_csv_with_bom_is_accepted(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "fer2013.csv").write_text(fer_csv())
    (tmp_path / "bom").mkdir()
    (tmp_path / "bom" / "fer2013.csv").write_bytes(b"\xef\xbb\xbf" + fer_csv().encode())
    ingest("fer2013", tmp_path / "plain", tmp_path / "out_plain")
    summary, manifest, quarantine = ingest("fer2013", tmp_path / "bom", tmp_path / "out_bom")
    check_accounting(summary, manifest, quarantine, 6)
    assert summary["kept"] == 6
    for name in FILES:  # the byte-order mark changes nothing
        assert (tmp_path / "out_plain" / name).read_bytes() == (tmp_path / "out_bom" / name).read_bytes()


@pytest.mark.parametrize("case", ["utf16", "utf16_no_bom", "latin1_early", "latin1_late"])
def test_fer2013_csv_not_utf8_names_file_and_line(tmp_path, capsys, case):
    text = fer_csv(6)
    lines = text.splitlines(keepends=True)
    if case == "utf16":
        data, where = text.encode("utf-16"), "line 1: starts with a UTF-16 byte-order mark"
    elif case == "utf16_no_bom":
        data, where = text.encode("utf-16-le"), "line 1: NUL byte at byte 2"
    else:  # a latin-1 'é' in the Usage of row 2 (line 3: in the header's first read block) or row 6 (line 7)
        n = 3 if case == "latin1_early" else 7
        lines[n - 1] = lines[n - 1].replace("Training", "Tr\xe9ning")
        data = "".join(lines).encode("latin-1")
        where = f"line {n}: byte 0xe9 at byte {lines[n - 1].index(chr(0xe9)) + 1} is not UTF-8"
    (tmp_path / "fer2013.csv").write_bytes(data)
    with pytest.raises(ValueError) as info:
        ingest("fer2013", tmp_path, tmp_path / "out")
    assert not isinstance(info.value, UnicodeDecodeError)
    assert str(info.value).startswith(f"{tmp_path / 'fer2013.csv'}: {where}")
    assert not (tmp_path / "out").exists()
    code = cli.main(["ingest", "fer2013", "--raw", str(tmp_path), "--out", str(tmp_path / "out"),
                     "--params", str(PARAMS), "--no-prefect"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"fer2013.csv: {where}" in err


def official_ck(root: Path, emotion_bytes: bytes) -> None:
    """One CK+ sequence S005/001 of 4 frames whose Emotion file holds ``emotion_bytes``."""
    for i in range(1, 5):
        write_image(root / "cohn-kanade-images" / "S005" / "001" / f"S005_001_{i:08d}.png", seed=i)
    p = root / "Emotion" / "S005" / "001" / "S005_001_00000004_emotion.txt"
    p.parent.mkdir(parents=True)
    p.write_bytes(emotion_bytes)


EMOTION = "Emotion/S005/001/S005_001_00000004_emotion.txt"


def test_ckplus_emotion_file_with_bom(tmp_path):
    official_ck(tmp_path / "ck", b"\xef\xbb\xbf   3.0000000e+00\n")
    summary, manifest, quarantine = ingest("ckplus", tmp_path / "ck", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 4)
    assert summary["per_class"] == {"neutral": 1, "disgust": 3} and quarantine.num_rows == 0


@pytest.mark.parametrize("data, where", [
    ("   3.0000000e+00\n".encode("utf-16"), "line 1: starts with a UTF-16 byte-order mark"),
    ("   3.0000000e+00\n".encode("utf-16-le"), "line 1: NUL byte at byte 2"),
    (b"   3.0000000e+00 \xb0\n", "line 1: byte 0xb0 at byte 18 is not UTF-8"),
    (b"3.0" + b" " * 5000, "5,003 bytes, more than the 1,024 expected of this file; not read"),
])
def test_ckplus_emotion_file_not_utf8_is_quarantined_naming_file_and_line(tmp_path, data, where):
    official_ck(tmp_path / "ck", data)
    summary, manifest, quarantine = ingest("ckplus", tmp_path / "ck", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 4)
    assert manifest.num_rows == 0 and reasons(quarantine) == {"bad_label_file": 4}
    for source, (_, detail) in quarantine_rows(quarantine).items():
        assert detail.startswith(f"{source}: {EMOTION}: {where}") and "\n" not in detail


# 3. label codes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["7.5", "   7.5000000e+00\n", "3.0000001e+00", "nan", "inf"])
def test_ckplus_non_integer_code_is_unknown_label(tmp_path, text):
    official_ck(tmp_path / "ck", text.encode())
    summary, manifest, quarantine = ingest("ckplus", tmp_path / "ck", tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 4)
    assert manifest.num_rows == 0 and reasons(quarantine) == {"unknown_label": 4}
    for source, (_, detail) in quarantine_rows(quarantine).items():
        assert detail == f"{source}: {EMOTION}: label code {text.strip()!r} is not a whole number (codes 0..7)"


def test_ckplus_integer_codes_still_read(tmp_path):
    official_ck(tmp_path / "ck", b"7")
    summary, _, _ = ingest("ckplus", tmp_path / "ck", tmp_path / "out")
    assert summary["per_class"] == {"neutral": 1, "surprise": 3}
    official_ck(tmp_path / "ck2", b"three")
    _, _, quarantine = ingest("ckplus", tmp_path / "ck2", tmp_path / "out2")
    assert reasons(quarantine) == {"bad_label_file": 4}
    assert "'three' is not one number" in quarantine.column("detail")[0].as_py()


# 4. details relative to the raw root ---------------------------------------------------------------

def test_same_data_in_two_places_gives_identical_bytes(tmp_path):
    """Every decode failure's detail names the file relative to the raw root, never the absolute path."""
    src = tmp_path / "first" / "ck48"
    ck48_tree(src, 3)
    write_truncated(src / "happy" / "S020_001_00000001.png", seed=20)
    write_empty(src / "happy" / "S021_001_00000001.png")
    (src / "happy" / "S022_001_00000001.png").write_bytes(b"not an image at all")
    (src / "happy" / "S023_001_00000001.png").symlink_to("nowhere.png")  # dangling: cannot stat
    write_png_bomb(src / "happy" / "S024_001_00000001.png", side=20000)
    write_flat_jpeg(src / "happy" / "S025_001_00000001.png", (8000, 7000))
    write_flat_jpeg(src / "happy" / "S026_001_00000001.png", (3000, 2000), colour=90)
    other = tmp_path / "somewhere" / "else" / "entirely" / "ck48"
    shutil.copytree(src, other, symlinks=True)
    ingest("ckplus", src, tmp_path / "out_a")
    summary, manifest, quarantine = ingest("ckplus", other, tmp_path / "out_b")
    check_accounting(summary, manifest, quarantine, 10)
    assert reasons(quarantine) == {"truncated": 1, "empty_file": 1, "unreadable": 1, "missing_image": 1,
                                   "decompression_bomb": 1, "too_large": 1}
    assert summary["downscaled"] == 1
    for name in FILES:
        assert (tmp_path / "out_a" / name).read_bytes() == (tmp_path / "out_b" / name).read_bytes(), name
    for source, (_, detail) in quarantine_rows(pq.read_table(tmp_path / "out_a" / "quarantine.parquet")).items():
        assert detail.startswith(f"{source}: ") and str(tmp_path) not in detail and "\n" not in detail


def test_fer2013_header_with_invisible_characters_is_shown_escaped(tmp_path):
    (tmp_path / "fer2013.csv").write_text("\u200bemotion,pixels,Usage\n0,1 2,Training\n")
    with pytest.raises(LayoutError, match=r"lacks column\(s\) emotion \(found: '\\u200bemotion', pixels, Usage\)"):
        ingest("fer2013", tmp_path, tmp_path / "out")
