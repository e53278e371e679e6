"""Synthetic sample generator: exact native layouts, labels, determinism, CK+ sequences, detectability."""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generated_raw import GENERATED_RAW_PER_CLASS as PC
from pipeline.core.labels import LABEL_NAMES, NATIVE_TO_UNIFIED, to_unified
from pipeline.synthetic import MARKER, write_dataset, write_sample
from pipeline.synthetic.expressions import expression_knobs
from pipeline.synthetic.layouts import JAFFE_SUBJECTS, KDEF_ANGLES, ckplus_plan, ckplus_sequence, rng_for
from pipeline.synthetic.faces import sample_identity

CK_FRAME = re.compile(r"cohn-kanade-images/(S\d{3})/(\d{3})/\1_\2_(\d{8})\.png")
CK_EMO = re.compile(r"Emotion/(S\d{3})/(\d{3})/\1_\2_(\d{8})_emotion\.txt")


def tree(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root``."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def fer_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------------- layouts
def test_sample_writes_every_dataset_and_marker(generated_raw):
    assert sorted(p.name for p in generated_raw.iterdir() if p.is_dir()) == sorted(PC)
    assert (generated_raw / MARKER).is_file()


def test_fer2013_csv(generated_raw):
    path = generated_raw / "fer2013" / "fer2013.csv"
    assert path.read_text().splitlines()[0] == "emotion,pixels,Usage"
    rows = fer_rows(path)
    assert len(rows) == 7 * PC["fer2013"]
    for row in rows:
        px = [int(v) for v in row["pixels"].split(" ")]
        assert len(px) == 48 * 48 and 0 <= min(px) and max(px) <= 255
    labels = Counter(LABEL_NAMES[to_unified("fer2013", r["emotion"])] for r in rows)
    assert labels == {n: PC["fer2013"] for n in NATIVE_TO_UNIFIED["fer2013"].values()}
    usages = [r["Usage"] for r in rows]
    assert set(usages) == {"Training", "PublicTest", "PrivateTest"}
    assert usages == sorted(usages, key=["Training", "PublicTest", "PrivateTest"].index)  # file order
    assert len({r["pixels"] for r in rows}) == len(rows)


def test_fer2013_variants_match_torchvision(tmp_path, monkeypatch):
    """icml_face_data.csv and the Kaggle train/test pair hold the same rows, readable by torchvision."""
    tv = pytest.importorskip("torchvision.datasets.fer2013")
    monkeypatch.setattr(tv, "check_integrity", lambda *a, **k: True)  # md5s are those of the real files
    files = write_dataset("fer2013", tmp_path / "all" / "fer2013", 3, seed=1, files=("fer2013", "icml", "kaggle"))
    assert files == ["fer2013.csv", "icml_face_data.csv", "test.csv", "train.csv"]
    base = tmp_path / "all" / "fer2013"
    assert (base / "icml_face_data.csv").read_text().splitlines()[0] == "emotion, Usage, pixels"
    assert (base / "train.csv").read_text().splitlines()[0] == "emotion,pixels"
    assert (base / "test.csv").read_text().splitlines()[0] == "pixels"
    rows = fer_rows(base / "fer2013.csv")
    train = [r for r in rows if r["Usage"] == "Training"]
    test = [r for r in rows if r["Usage"] != "Training"]
    for name in ("icml_face_data.csv", "train.csv"):  # one variant at a time, as torchvision picks one
        only = tmp_path / name / "fer2013"
        only.mkdir(parents=True)
        for f in ([name] if name.startswith("icml") else ["train.csv", "test.csv"]):
            (only / f).write_bytes((base / f).read_bytes())
        ds = tv.FER2013(tmp_path / name, split="train")
        assert [ds[i][1] for i in range(len(ds))] == [int(r["emotion"]) for r in train]
        img = np.asarray(ds[0][0])
        assert img.shape == (48, 48)
        assert img.ravel().tolist() == [int(v) for v in train[0]["pixels"].split()]
        test_ds = tv.FER2013(tmp_path / name, split="test")
        assert len(test_ds) == len(test)
        expected = [int(r["emotion"]) for r in test] if name.startswith("icml") else [None] * len(test)
        assert [test_ds[i][1] for i in range(len(test_ds))] == expected


def test_ckplus_native_layout(generated_raw):
    root = generated_raw / "ckplus"
    frames: dict[tuple[str, str], list[int]] = {}
    for p in (root / "cohn-kanade-images").rglob("*"):
        if p.is_file():
            m = CK_FRAME.fullmatch(p.relative_to(root).as_posix())
            assert m, p
            frames.setdefault(m.group(1, 2), []).append(int(m.group(3)))
    for seq, nums in frames.items():
        assert sorted(nums) == list(range(1, len(nums) + 1)) and 8 <= len(nums) <= 12, seq
    first = Image.open(next((root / "cohn-kanade-images").rglob("*_00000001.png")))
    assert first.mode == "L" and first.size == (640, 490)
    codes = Counter()
    for p in (root / "Emotion").rglob("*.txt"):
        m = CK_EMO.fullmatch(p.relative_to(root).as_posix())
        assert m, p
        assert int(m.group(3)) == max(frames[m.group(1, 2)]), "the label names the last (peak) frame"
        text = p.read_text()
        assert re.fullmatch(r"   [1-7]\.0000000e\+00\n", text), text
        codes[int(float(text))] += 1
    assert codes == {c: PC["ckplus"] for c in range(1, 8)}  # no neutral (0) label files
    assert len(frames) > sum(codes.values()), "some sequences stay unlabelled, as in real CK+"
    assert len({s for s, _ in frames}) >= 5


def test_ckplus_sequence_goes_from_neutral_to_peak(generated_raw):
    root = generated_raw / "ckplus"
    seq = next(s for s in ckplus_plan(PC["ckplus"], 0) if s["labelled"] and s["label"] == "happiness")
    d = root / "cohn-kanade-images" / seq["subject"] / seq["sequence"]
    imgs = [np.asarray(Image.open(p), np.float32) for p in sorted(d.glob("*.png"))]
    assert len(imgs) == seq["frames"]
    # change from frame 1 where the face changes most (99th percentile of 10x10-pixel block means,
    # so that sensor noise averages out)
    small = [im.reshape(49, 10, 64, 10).mean(axis=(1, 3)) for im in imgs]
    change = [float(np.percentile(np.abs(im - small[0]), 99)) for im in small]
    assert change[-1] > 3 * change[1] and change[-1] > 8.0, change
    assert all(b >= a - 1.0 for a, b in zip(change[1:], change[2:])), change  # ramps up
    # frame 1 is exactly the subject's neutral face: the same sequence drawn as "neutral" gives it
    ident = sample_identity(rng_for(0, "ckplus", "subject", seq["subject"]), glasses_p=0.0)
    neutral = ckplus_sequence({**seq, "label": "neutral"}, 0, ident, frames=[1, seq["frames"]])
    assert np.array_equal(neutral[1], imgs[0].astype(np.uint8))
    diff = np.abs(neutral[seq["frames"]].astype(np.float32) - imgs[-1]).reshape(49, 10, 64, 10).mean(axis=(1, 3))
    assert np.percentile(diff, 99) > 8.0


def test_ckplus48_layout(tmp_path):
    files = write_dataset("ckplus", tmp_path / "ck48", 1, seed=0, layout="ckplus48")
    assert len(files) == 7 * 3
    folders = Counter(f.split("/")[0] for f in files)
    assert folders == {c: 3 for c in ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")}
    for f in files:
        assert re.fullmatch(r"[a-z]+/S\d{3}_\d{3}_\d{8}\.png", f)
        im = Image.open(tmp_path / "ck48" / f)
        assert im.mode == "L" and im.size == (48, 48)


def test_jaffe_layout(generated_raw):
    files = sorted(p.name for p in (generated_raw / "jaffe").iterdir())
    parsed = [re.fullmatch(r"([A-Z]{2})\.([A-Z]{2})(\d)\.(\d+)\.tiff", f) for f in files]
    assert all(parsed), files
    assert {m.group(1) for m in parsed} == set(JAFFE_SUBJECTS)
    assert Counter(m.group(2) for m in parsed) == {c: 10 * max(1, -(-PC["jaffe"] // 10)) for c in
                                                   NATIVE_TO_UNIFIED["jaffe"]}
    assert len({m.group(4) for m in parsed}) == len(files), "running ids are unique"
    im = Image.open(generated_raw / "jaffe" / files[0])
    assert im.format == "TIFF" and im.mode == "L" and im.size == (256, 256)


def test_rafdb_layout(generated_raw):
    base = generated_raw / "rafdb" / "basic"
    lines = (base / "EmoLabel" / "list_patition_label.txt").read_text().splitlines()
    parsed = [re.fullmatch(r"(train_\d{5}|test_\d{4})\.jpg ([1-7])", line) for line in lines]
    assert all(parsed), lines
    assert Counter(m.group(2) for m in parsed) == {str(c): PC["rafdb"] for c in range(1, 8)}
    assert {m.group(1).split("_")[0] for m in parsed} == {"train", "test"}
    sizes = set()
    for m in parsed:
        orig = Image.open(base / "Image" / "original" / f"{m.group(1)}.jpg")
        al = Image.open(base / "Image" / "aligned" / f"{m.group(1)}_aligned.jpg")
        assert orig.mode == al.mode == "RGB" and al.size == (100, 100)
        sizes.add(orig.size)
    assert len(sizes) > 1, "originals come in varied sizes"
    assert len(list((base / "Image" / "original").iterdir())) == len(lines)


def test_kdef_layout(generated_raw):
    base = generated_raw / "kdef" / "KDEF"
    folders = sorted(p.name for p in base.iterdir())
    assert {f[0] for f in folders} == {"A", "B"} and {f[1] for f in folders} == {"F", "M"}
    for folder in folders:
        assert re.fullmatch(r"[AB][FM]\d\d", folder)
        names = sorted(p.name for p in (base / folder).iterdir())
        expected = sorted(f"{folder}{e}{a}.JPG" for e in NATIVE_TO_UNIFIED["kdef"] for a in KDEF_ANGLES)
        assert names == expected
    im = Image.open(base / folders[0] / f"{folders[0]}HAS.JPG")
    assert im.format == "JPEG" and im.mode == "RGB" and im.size == (562, 762)


# ------------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_other_seed_other_bytes(generated_raw, tmp_path):
    for name in ("fer2013", "rafdb"):
        write_dataset(name, tmp_path / "again" / name, PC[name], seed=0)
        assert tree(tmp_path / "again" / name) == tree(generated_raw / name), name
    write_dataset("rafdb", tmp_path / "other", PC["rafdb"], seed=1)
    a, b = tree(tmp_path / "other"), tree(generated_raw / "rafdb")
    images = [k for k in a if k.endswith(".jpg")]
    assert a.keys() == b.keys() and images and all(a[k] != b[k] for k in images)


def test_rendering_depends_on_the_expression():
    """Same identity and scene: every class draws a different face, intensity 0 draws the neutral one."""
    from pipeline.synthetic.faces import Scene
    from pipeline.synthetic.photo import Camera, picture

    ident = sample_identity(np.random.default_rng(5))
    scene = Scene(cx=48, cy=56, scale=38)

    def draw(name, intensity=1.0):
        return picture(np.random.default_rng(0), ident, expression_knobs(name, intensity, ident.style), 96, 96,
                       scene, cam=Camera(noise=0.0), grey=True).astype(np.float32)

    faces = {n: draw(n) for n in LABEL_NAMES}
    for i, a in enumerate(LABEL_NAMES):
        for b in LABEL_NAMES[i + 1:]:
            assert np.abs(faces[a] - faces[b]).mean() > 0.4, (a, b)
    assert np.array_equal(draw("surprise", 0.0), faces["neutral"])


# --------------------------------------------------------------------------------- the stage
def test_cli_sample_and_real_data_guard(tmp_path):
    from pipeline.cli import main

    out = tmp_path / "raw"
    assert main(["sample", "--out", str(out), "--per-class", "1", "--datasets", "fer2013", "jaffe"]) == 0
    assert (out / "fer2013" / "fer2013.csv").is_file() and len(list((out / "jaffe").iterdir())) == 70
    assert main(["sample", "--out", str(out), "--per-class", "1", "--datasets", "fer2013"]) == 0  # ours: rewritten
    real = out / "kdef"
    real.mkdir()
    (real / "AF01").mkdir()
    with pytest.raises(FileExistsError, match="kdef"):
        write_sample(out, ["kdef"], per_class=1)
    assert (real / "AF01").is_dir()


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset"):
        write_dataset("affectnet", "/nonexistent", 1)
    with pytest.raises(ValueError, match="per_class"):
        write_dataset("jaffe", "/nonexistent", 0)


# ----------------------------------------------------------------------------- detectability
def test_mtcnn_finds_a_few_generated_faces(generated_raw):
    """A handful only (MTCNN is slow on CPU); bench/sample_detection.py measures the full rates."""
    torch = pytest.importorskip("torch")
    mtcnn_mod = pytest.importorskip("facenet_pytorch")
    torch.set_num_threads(1)
    rows = fer_rows(generated_raw / "fer2013" / "fer2013.csv")
    images = [Image.fromarray(np.array(rows[0]["pixels"].split(), np.uint8).reshape(48, 48))]
    ck = sorted((generated_raw / "ckplus" / "Emotion").rglob("*.txt"))[0]
    images.append(Image.open(str(ck).replace("Emotion", "cohn-kanade-images").replace("_emotion.txt", ".png")))
    images.append(Image.open(sorted((generated_raw / "jaffe").glob("*.tiff"))[0]))
    images.append(Image.open(generated_raw / "rafdb" / "basic" / "Image" / "aligned" / "train_00002_aligned.jpg"))
    images.append(Image.open(generated_raw / "kdef" / "KDEF" / "AF01" / "AF01HAS.JPG"))
    mtcnn = mtcnn_mod.MTCNN(keep_all=True, device="cpu")
    found = [mtcnn.detect(im.convert("RGB"))[0] is not None for im in images]
    assert all(found), found
