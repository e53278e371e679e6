"""fer-pipeline predict: every input kind (file, folder, glob, video), every output (text, JSON, CSV,
annotated copies), every bad input, and runs from a directory without params.yaml."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from inference_helpers import HEADS, NAMES, cli, make_checkpoint

from pipeline.inference.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory):
    """A working directory without params.yaml (nor one above it)."""
    path = tmp_path_factory.mktemp("elsewhere")
    assert not any((p / "params.yaml").exists() for p in [path, *path.parents])
    return path


@pytest.fixture(scope="module")
def full_run(checkpoint, media, elsewhere):
    """One run over a folder, a glob and a video (every 2nd frame), with CSV and annotated copies."""
    rc, out, err = cli("predict", "--checkpoint", checkpoint, media / "album", str(media / "loose" / "*.png"),
                       media / "clip.avi", "--every", "2", "--csv", "rows.csv", "--annotate", "annotated",
                       "--no-progress", cwd=elsewhere)
    with open(elsewhere / "rows.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rc, out, err, rows


def by_source(rows, name):
    return [r for r in rows if r["source"].endswith(name)]


def test_every_input_kind_gives_its_rows(full_run, media):
    rc, out, err, rows = full_run
    assert rc == 1  # one unreadable input: reported, the rest done
    assert "Traceback" not in err
    for rel, heads in HEADS.items():  # folder (recursive) and glob: every face found, where it is
        found = by_source(rows, rel.split("/")[-1])
        assert [r["status"] for r in found] == ["face"] * len(heads), rel
        centres = sorted(((float(r["x1"]) + float(r["x2"])) / 2, (float(r["y1"]) + float(r["y2"])) / 2) for r in found)
        for (cx, cy), (hx, hy, px) in zip(centres, sorted(heads)):
            assert abs(cx - hx) < px / 3 and abs(cy - hy) < px / 2, (rel, cx, cy, hx, hy)
    assert [(r["status"], r["face"], r["label"]) for r in by_source(rows, "empty.png")] == [("no_face", "", "")]
    (bad,) = by_source(rows, "broken.jpg")
    assert bad["status"] == "unreadable" and "not a decodable image" in bad["detail"]
    assert err.count("broken.jpg: not a decodable image") == 1
    video = by_source(rows, "clip.avi")  # frames 0, 2, 4 of 6, at 10 fps
    assert [(r["frame"], r["time_s"], r["status"]) for r in video] == [("0", "0.0", "face"), ("2", "0.2", "face"),
                                                                       ("4", "0.4", "face")]
    xs = [float(r["x1"]) for r in video]
    assert xs[0] < xs[1] < xs[2]  # the face moves right by 4 px a frame
    for r in rows:
        if r["status"] == "face":
            probs = {n: float(r[f"p_{n}"]) for n in NAMES}
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
            assert r["label"] == max(probs, key=probs.get)
            assert float(r["confidence"]) == pytest.approx(probs[r["label"]])
    assert "predict: 4 image(s), 1 video(s), 3 frame(s), 7 face(s), 1 without a face, 1 unreadable" in out


def test_rows_follow_the_inputs_order(full_run):
    sources = [r["source"] for r in full_run[3]]
    order = list(dict.fromkeys(sources))
    assert [s.split("/")[-1] for s in order] == ["broken.jpg", "empty.png", "one.jpg", "two.png", "extra.png",
                                                 "clip.avi"]


def test_annotated_copies_show_the_boxes(full_run, media, elsewhere):
    import cv2

    rows = full_run[3]
    ann = elsewhere / "annotated"
    assert sorted(p.relative_to(ann).as_posix() for p in ann.rglob("*") if p.is_file()) == [
        "album/empty.png", "album/nested/one.jpg", "album/two.png", "clip.avi", "extra.png"]
    original = cv2.imread(str(media / "album" / "two.png"))
    drawn = cv2.imread(str(ann / "album" / "two.png"))
    assert drawn.shape == original.shape
    for r in by_source(rows, "two.png"):  # the box outline is drawn, the inside of the face is not
        x1, y1, x2, y2 = (int(round(float(r[k]))) for k in ("x1", "y1", "x2", "y2"))
        assert np.abs(drawn[(y1 + y2) // 2, x1].astype(int) - original[(y1 + y2) // 2, x1]).sum() > 60
        assert np.array_equal(drawn[(y1 + y2) // 2, (x1 + x2) // 2], original[(y1 + y2) // 2, (x1 + x2) // 2])
    assert np.array_equal(cv2.imread(str(ann / "album" / "empty.png")), cv2.imread(str(media / "album" / "empty.png")))
    cap = cv2.VideoCapture(str(ann / "clip.avi"))  # every frame of the video, with the latest prediction
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 6 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320


def test_json_and_text_say_what_the_csv_says(full_run, checkpoint, media, elsewhere):
    rows = {(r["source"], r["face"]): r for r in full_run[3]}
    two, empty = media / "album" / "two.png", media / "album" / "empty.png"
    rc, out, err = cli("predict", "--checkpoint", checkpoint, two, empty, "--json", cwd=elsewhere)
    assert rc == 0
    records = json.loads(out)
    assert [(r["status"], r["face"]) for r in records] == [("face", 0), ("face", 1), ("no_face", None)]
    for rec in records:
        ref = rows[(rec["source"], "" if rec["face"] is None else str(rec["face"]))]
        assert rec["label"] == (ref["label"] or None)
        if rec["status"] == "face":
            assert rec["box"] == [float(ref[k]) for k in ("x1", "y1", "x2", "y2")]
            assert rec["probabilities"] == pytest.approx({n: float(ref[f"p_{n}"]) for n in NAMES}, abs=1e-6)
    rc, out, _ = cli("predict", "--checkpoint", checkpoint, two, empty, cwd=elsewhere)
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 4
    assert lines[0].startswith(f"{two}: face 0 box [") and lines[2] == f"{empty}: no face"


def test_csv_to_stdout(checkpoint, media, elsewhere):
    rc, out, err = cli("predict", "--checkpoint", checkpoint, media / "album" / "empty.png", "--csv", "-",
                       cwd=elsewhere)
    assert rc == 0
    header, row = list(csv.reader(io.StringIO(out)))
    assert header[:4] == ["source", "frame", "time_s", "face"] and [f"p_{n}" for n in NAMES] == header[11:14]
    assert row[-2] == "no_face" and "predict: 1 image(s)" in err


def test_no_track_finds_the_same_faces(checkpoint, media, elsewhere):
    rc, out, _ = cli("predict", "--checkpoint", checkpoint, media / "clip.avi", "--json", "--no-track", cwd=elsewhere)
    plain = json.loads(out)
    rc2, out2, _ = cli("predict", "--checkpoint", checkpoint, media / "clip.avi", "--json", cwd=elsewhere)
    tracked = json.loads(out2)
    assert rc == rc2 == 0 and [r["frame"] for r in plain] == [r["frame"] for r in tracked] == list(range(6))
    for a, b in zip(plain, tracked):
        assert np.abs(np.subtract(a["box"], b["box"])).max() < 8  # pixels of 320x240, face ~90 px


def write_corrupt(path):
    path.write_bytes(b"PK\x03\x04 not really a zip" * 10)
    return path


def write_foreign(path):
    torch.save({"weights": torch.zeros(3)}, path)
    return path


def write_misfit(path):
    ckpt = torch.load(make_checkpoint(path), weights_only=False)
    ckpt["num_classes"] = 5
    torch.save(ckpt, path)
    return path


def write_plain_onnx(path):
    from pipeline.evaluation.onnx_export import export_onnx

    return export_onnx(torch.nn.Conv2d(1, 3, 3), (1, 1, 8, 8), path)


@pytest.mark.parametrize("make, option, message", [
    (lambda d: d / "nope.pt", "--checkpoint", "nope.pt: checkpoint not found"),
    (lambda d: write_corrupt(d / "corrupt.pt"), "--checkpoint", "corrupt.pt: not a readable checkpoint"),
    (lambda d: write_foreign(d / "foreign.pt"), "--checkpoint", "foreign.pt: not a fer-pipeline checkpoint"),
    (lambda d: write_misfit(d / "misfit.pt"), "--checkpoint", "misfit.pt: the weights do not fit the network"),
    (lambda d: d / "nope.onnx", "--model", "nope.onnx: model file not found"),
    (lambda d: write_plain_onnx(d / "plain.onnx"), "--model", "plain.onnx: no fer-pipeline metadata"),
    (lambda d: write_corrupt(d / "corrupt.onnx"), "--model", "corrupt.onnx: not a readable ONNX model"),
    (lambda d: write_corrupt(d / "corrupt.ts"), "--model", "corrupt.ts: not a TorchScript model"),
])
def test_a_bad_model_is_one_line_without_traceback(make, option, message, media, tmp_path):
    rc, out, err = cli("predict", option, make(tmp_path), media / "album" / "empty.png", cwd=tmp_path)
    assert rc == 2 and out == ""
    (line,) = [ln for ln in err.splitlines() if ln.startswith("fer-pipeline predict: error:")]
    assert message in line and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["--device", "gpu"], "--device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["--every", "0"], "--every must be >= 1"),
    (["--json", "--csv", "-"], "--json and --csv - both want stdout"),
])
def test_bad_options_are_one_line(argv, message, checkpoint, media, tmp_path):
    rc, out, err = cli("predict", "--checkpoint", checkpoint, *argv, media / "album" / "empty.png", cwd=tmp_path)
    assert rc == 2 and message in err and len(err.splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_where_there_is_none_is_refused(checkpoint, media, tmp_path):
    rc, _, err = cli("predict", "--checkpoint", checkpoint, "--device", "cuda", media / "album" / "empty.png",
                     cwd=tmp_path)
    assert rc == 2 and "--device cuda: CUDA is not available on this machine" in err and len(err.splitlines()) == 1


def test_missing_and_empty_inputs_are_reported_and_the_rest_go_on(checkpoint, media, tmp_path):
    (tmp_path / "void").mkdir()
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
    rc, out, err = cli("predict", "--checkpoint", checkpoint, "missing.jpg", "void", "nothing-*.png", "bad.mp4",
                       media / "album" / "empty.png", "--json", cwd=tmp_path)
    assert rc == 1
    records = json.loads(out)
    assert [(r["source"], r["status"]) for r in records] == [
        ("missing.jpg", "unreadable"), ("void", "unreadable"), ("nothing-*.png", "unreadable"),
        ("bad.mp4", "unreadable"), (str(media / "album" / "empty.png"), "no_face")]
    assert [r["detail"].split(": ", 1)[1] for r in records[:4]] == [
        "no such file or folder", "no images or videos in this folder", "no file matches this pattern",
        "not a readable video"]
    assert "Traceback" not in err and len([ln for ln in err.splitlines() if ln.startswith("fer-pipeline")]) == 4


def test_checkpoint_finds_its_projects_params_from_anywhere(tmp_path, elsewhere):
    """A checkpoint inside a project (params.yaml beside dvc.yaml) takes ``align.<its dataset>`` and the
    detection settings of that project's params.yaml, run from anywhere. Without one it says it uses
    the built-in settings."""
    import yaml

    project = tmp_path / "project"
    (project / "models" / "ean-jaffe").mkdir(parents=True)
    params = {"align": {"defaults": {"px": 96, "margin": 0.4, "colour": "rgb"}, "jaffe": {"px": 64, "colour": "grey"},
                        "photos": {"detection": {"max_side": 900, "min_face_size": 30}}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("not: [ours\n")  # above the project: never read
    ckpt = make_checkpoint(project / "models" / "ean-jaffe" / "checkpoint.pt", dataset="jaffe")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(elsewhere)
        mp.delenv("FER_PARAMS", raising=False)
        spec = Predictor.open(checkpoint=ckpt, device="cpu").spec
        lone = Predictor.open(checkpoint=make_checkpoint(elsewhere / "lone.pt"), device="cpu").spec
    assert (spec.align["px"], spec.align["colour"], spec.align["margin"]) == (64, "grey", 0.4)
    assert spec.detection["photos"]["max_side"] == 900 and spec.detection["photos"]["min_face_size"] == 30
    assert spec.detection["video"]["max_side"] == 320  # no align.video there: the built-in one
    assert str(project / "params.yaml") in spec.source
    assert "built-in" in lone.source and lone.align["px"] == 112 and lone.detection["photos"]["max_side"] == 1280


def test_built_in_detection_is_the_committed_params(project_root):
    from pipeline.core.params import load
    from pipeline.inference.spec import DEFAULT_DETECTION, detection_from_params

    assert detection_from_params(load(project_root / "params.yaml")) == DEFAULT_DETECTION


def test_astronaut_has_one_face_with_probabilities_summing_to_one(checkpoint):
    import skimage.data

    predictor = Predictor.open(checkpoint=checkpoint, device="cpu")
    faces = predictor.predict_image(skimage.data.astronaut())
    assert len(faces) == 1
    face = faces[0]
    assert list(face.probabilities) == NAMES
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    x1, y1, x2, y2 = face.box
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200  # the astronaut's face
    assert predictor.predict_image(np.full((200, 200, 3), 127, np.uint8)) == []  # no face, no prediction
    assert not math.isclose(max(face.probabilities.values()), 1 / 3, abs_tol=0.05)  # decisive outputs
