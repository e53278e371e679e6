"""Align stage: alignment geometry on a real photo, every bad input accounted for, the stage's
outputs, resumability and determinism (MTCNN on a handful of images, one thread)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from align_helpers import png, write_manifest
from pipeline.align import chunks as chunks_mod
from pipeline.align.detector import detect_faces
from pipeline.align.policy import align_faces, align_images
from pipeline.align.settings import AlignSettings
from pipeline.align.warp import similarity_matrix, template_points

SIZE, MARGIN = 160, 0.25


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def settings(**kw) -> AlignSettings:
    return AlignSettings.from_dict({"px": SIZE, "margin": MARGIN, "detection": {"max_side": 512}, **kw})


def eye_angle(points: np.ndarray) -> float:
    (lx, ly), (rx, ry) = points[0], points[1]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def test_astronaut_eyes_level_and_at_template(astronaut):
    s = settings()
    (crop, outcome), = align_images([astronaut], s)
    assert outcome.outcome == "detected" and outcome.n_faces == 1 and outcome.prob > 0.99
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    template = template_points(SIZE, MARGIN)
    # the landmarks, carried by the transform that made the crop
    src = np.array(outcome.landmarks).reshape(5, 2)
    m = similarity_matrix(src, template)
    mapped = src @ m[:, :2].T + m[:, 2]
    assert abs(eye_angle(mapped)) < 2.0
    assert np.abs(mapped[:2] - template[:2]).max() < 3.0
    # and found again by MTCNN in the crop itself
    again = detect_faces([crop], s.detection)[0]
    assert len(again) == 1
    assert abs(eye_angle(again[0].landmarks)) < 2.0
    assert np.abs(again[0].landmarks[:2] - template[:2]).max() < 5.0


def test_rotated_copy_aligns_to_the_same_crop(astronaut):
    s = settings()
    (upright, _), (rotated, outcome) = align_images([astronaut, rotate(astronaut, 15)], s)
    assert outcome.outcome == "detected"
    assert abs(eye_angle(np.array(outcome.landmarks).reshape(5, 2))) > 10  # it was rotated
    corr = np.corrcoef(upright.astype(float).ravel(), rotated.astype(float).ravel())[0, 1]
    assert corr > 0.95
    unaligned = np.corrcoef(upright.astype(float).ravel(), np.rot90(rotated).astype(float).ravel())[0, 1]
    assert unaligned < corr - 0.2  # the correlation measures alignment, not just similar colours


def test_colour_interpolation_and_px_are_settings(astronaut):
    grey = settings(colour="grey", px=48, interpolation="cubic", margin=0.1)
    (crop, outcome), = align_images([astronaut], grey)
    assert outcome.outcome == "detected" and crop.shape == (48, 48)


def bad_inputs(astronaut):
    """(name, image or bytes, expected outcome, expected reason) of every kind of awkward input."""
    import cv2

    huge = np.full((3000, 4000, 3), 90, np.uint8)
    huge[500:2500, 1000:3000] = cv2.resize(astronaut, (2000, 2000), interpolation=cv2.INTER_CUBIC)
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    from skimage import data

    return [
        ("photo", astronaut, "detected", None),
        ("grey", cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), "detected", None),
        ("rgba", rgba, "detected", None),
        ("huge", huge, "detected", None),
        ("noface", data.coffee(), "fallback", "no_face"),
        ("blank", np.zeros((200, 300, 3), np.uint8), "fallback", "no_face"),
        ("tiny", np.full((8, 8), 128, np.uint8), "quarantined", "too_small"),
        ("corrupt", b"\x89PNG\r\n\x1a\n broken", "quarantined", "unreadable"),
        ("empty", b"", "quarantined", "unreadable"),
    ]


def test_bad_inputs_each_get_one_clear_outcome(tmp_path, astronaut):
    items = bad_inputs(astronaut)
    manifest = write_manifest(tmp_path / "m", [(n, img, "happiness") for n, img, _, _ in items])
    rows = pq.read_table(manifest / "manifest.parquet")
    crops, outcomes, counts = chunks_mod.align_rows(rows, settings(centre_crop=0.9))
    assert outcomes.column("image_id").to_pylist() == rows.column("image_id").to_pylist()
    got = {r["image_id"].split("/")[1]: r for r in outcomes.to_pylist()}
    for name, _, outcome, reason in items:
        assert (got[name]["outcome"], got[name]["reason"]) == (outcome, reason), name
    # the huge photo was found after the working-size downscale, in full-resolution coordinates
    x1, y1, x2, y2 = got["huge"]["box"]
    assert 1000 < x1 < x2 < 3000 and 500 < y1 < y2 < 2500
    kept = [n for n, _, o, _ in items if o != "quarantined"]
    assert [i.split("/")[1] for i in crops.column("image_id").to_pylist()] == kept
    assert set(crops.column("width").to_pylist()) == {SIZE} and set(crops.column("channels").to_pylist()) == {3}
    assert counts["happiness"]["quarantined"] == 3 and counts["happiness"]["detected"] == 4


def test_without_fallback_a_faceless_image_is_quarantined(astronaut):
    s = settings(fallback=[])
    (crop, outcome), = align_images([np.zeros((100, 100, 3), np.uint8)], s)
    assert crop is None and (outcome.outcome, outcome.reason, outcome.n_faces) == ("quarantined", "no_face", 0)


def test_redetect_fallback_finds_small_faces_the_first_pass_skips(astronaut):
    import cv2

    canvas = np.full((600, 800, 3), 120, np.uint8)
    canvas[250:350, 350:450] = cv2.resize(astronaut[40:240, 130:330], (100, 100), interpolation=cv2.INTER_AREA)
    fast = {"max_side": 800, "min_face_size": 160}
    (_, first), = align_images([canvas], settings(fallback=[], detection=fast))
    (_, second), = align_images([canvas], settings(fallback=["redetect"], detection=fast))
    assert first.outcome == "quarantined" and first.reason == "no_face"
    assert second.outcome == "detected" and second.reason == "redetect"


def test_precropped_policy_resizes_and_can_verify(astronaut):
    import cv2

    face = cv2.resize(cv2.cvtColor(astronaut[30:230, 125:325], cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    plain = settings(policy="precropped", px=64, colour="grey")
    (crop, outcome), = align_images([face], plain)
    assert crop.shape == (64, 64) and outcome.outcome == "precropped" and outcome.n_faces is None
    verify = settings(policy="precropped", px=64, colour="grey", verify=True,
                      detection={"min_side": 96, "pad": 0.25, "min_face_size": 40})
    (_, found), (_, none) = align_images([face, np.zeros((48, 48), np.uint8)], verify)
    assert found.outcome == "precropped" and found.n_faces == 1 and found.prob > 0.9
    assert (none.outcome, none.reason, none.n_faces) == ("precropped", "not_verified", 0)
    # small images of a detect dataset (a CK+48 copy) count as pre-cropped
    (_, auto), = align_images([face], settings(precropped_max_side=64))
    assert auto.outcome == "precropped"


def test_align_faces_returns_every_face_best_first(astronaut):
    pair = np.hstack([astronaut, rotate(astronaut, -10)])
    faces = align_faces(pair, settings(detection={"max_side": 1024}))
    assert len(faces) == 2 and all(o.n_faces == 2 for _, o in faces)
    assert faces[0][1].prob >= faces[1][1].prob
    assert align_faces(np.zeros((64, 64, 3), np.uint8), settings()) == []


def test_settings_errors_name_the_key():
    with pytest.raises(ValueError, match=r"align.jaffe: unknown key\(s\) \['sizee'\]"):
        AlignSettings.from_dict({"sizee": 3}, where="align.jaffe")
    with pytest.raises(ValueError, match="align.detection.min_face_size"):
        AlignSettings.from_dict({"detection": {"min_face_size": 5}})
    with pytest.raises(ValueError, match="fallback"):
        AlignSettings.from_dict({"fallback": ["guess"]})


def test_params_sections_are_valid(project_root):
    from pipeline.core import params

    p = params.load(project_root / "params.yaml")
    for key in [*p["datasets"], "photos"]:
        AlignSettings.from_dict(params.section("align", key, params=p), where=f"align.{key}")


# --- the stage: outputs, accounting, resumability, determinism ------------------------------------

def sequential(name, fn, chunks, runner=None):
    """Stand-in for flows.run_chunks where the test is about resumability, not Prefect."""
    return [fn(c) for c in chunks]


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory, astronaut, prefect_harness):
    """One real run of ``fer-pipeline align`` (Prefect, thread runner) on a mixed manifest."""
    import yaml

    from pipeline.cli import main

    root = tmp_path_factory.mktemp("stage")
    items = [(f"{name}-{k}", np.roll(img, 7 * k, axis=1) if isinstance(img, np.ndarray) else img,
              ("happiness", "anger")[k % 2])
             for k, (name, img, _, _) in enumerate(bad_inputs(astronaut)) if name != "huge"]
    write_manifest(root / "interim", items, dataset="jaffe")
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump({
        "align": {"defaults": {"px": 64, "chunk_rows": 3, "detection": {"max_side": 320}},
                  "jaffe": {"colour": "grey", "contact_sheet": {"n": 4, "tile": 32}}},
        "flow": {"runner": {"kind": "threads", "max_workers": 2}},
    }))
    argv = ["align", "jaffe", "--manifest", str(root / "interim"), "--out", str(root / "aligned" / "jaffe"),
            "--params", str(params_file), "--no-progress"]
    assert main(argv) == 0
    return root, argv, items


def read_bytes(out: Path) -> dict[str, bytes]:
    return {f: (out / f).read_bytes() for f in ("crops.parquet", "outcomes.parquet", "summary.json", "contact_sheet.png")}


def test_stage_outputs_follow_the_contract(stage_run):
    from pipeline.ingest.manifest import MANIFEST_SCHEMA

    root, _, items = stage_run
    out = root / "aligned" / "jaffe"
    manifest = pq.read_table(root / "interim" / "manifest.parquet")
    crops, outcomes = pq.read_table(out / "crops.parquet"), pq.read_table(out / "outcomes.parquet")
    carried = [n for n in MANIFEST_SCHEMA.names if n not in ("image", "width", "height", "channels")]
    assert set(crops.schema.names) == set(MANIFEST_SCHEMA.names) | {"outcome"}
    assert outcomes.schema.names == ["image_id", "outcome", "reason", "prob", "box", "landmarks", "n_faces"]
    for name in ("box", "landmarks"):
        assert outcomes.schema.field(name).type.value_type == pa.float32()
    # accounting: one outcome per manifest row, in order; crops are exactly the non-quarantined
    assert outcomes.column("image_id").to_pylist() == manifest.column("image_id").to_pylist()
    kept = [r["image_id"] for r in outcomes.to_pylist() if r["outcome"] != "quarantined"]
    assert crops.column("image_id").to_pylist() == kept
    by_id = {r["image_id"]: r for r in manifest.select(carried).to_pylist()}
    for row in crops.select(carried).to_pylist():
        assert row == by_id[row["image_id"]]
    for row in crops.select(["image", "width", "height", "channels", "outcome"]).to_pylist():
        import cv2

        img = cv2.imdecode(np.frombuffer(row["image"], np.uint8), cv2.IMREAD_UNCHANGED)
        assert img.shape == (64, 64) == (row["height"], row["width"]) and row["channels"] == 1
        assert row["outcome"] in ("detected", "fallback")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == len(items) == sum(summary["per_outcome"].values())
    assert summary["per_outcome"] == {"detected": 3, "precropped": 0, "fallback": 2, "quarantined": 3}
    assert summary["per_reason"] == {"no_face": 2, "too_small": 1, "unreadable": 2}
    assert summary["detection_rate"] == pytest.approx(3 / 5)
    assert sum(c["images"] for c in summary["per_class"].values()) == len(items)
    from PIL import Image

    assert Image.open(out / "contact_sheet.png").size == (64, 64)  # 4 tiles of 32 px


def test_rerun_does_no_work_and_resumes_from_parts(stage_run, tmp_path, monkeypatch):
    from pipeline.runner import flows
    from pipeline.cli import main

    root, argv, _ = stage_run
    out = root / "aligned" / "jaffe"
    before = read_bytes(out)
    mtimes = {f: (out / f).stat().st_mtime_ns for f in before}
    calls = []
    monkeypatch.setattr(flows, "run_chunks", lambda *a, **k: calls.append(a[2]) or sequential(*a, **k))

    assert main(argv) == 0  # unchanged inputs and params: nothing recomputed, nothing rewritten
    assert calls == [] and {f: (out / f).stat().st_mtime_ns for f in before} == mtimes

    # an interrupted run: outputs gone, one part missing, a half-written temporary part left over
    parts = out.parent / ".jaffe.parts"
    done = sorted(p for p in parts.iterdir() if p.is_dir())
    assert len(done) == 3  # 8 rows in chunks of 3
    shutil.rmtree(out)
    shutil.rmtree(done[1])
    (parts / f".{done[1].name}.junk.tmp").mkdir()
    assert main(argv) == 0
    assert len(calls) == 1 and [c.key for c in calls[0]] == [done[1].name]
    assert read_bytes(out) == before  # deterministic bytes


def test_changed_params_recompute_and_prune_old_parts(stage_run, tmp_path, monkeypatch):
    import yaml

    from pipeline.runner import flows
    from pipeline.cli import main

    root, argv, _ = stage_run
    monkeypatch.setattr(flows, "run_chunks", sequential)
    params_file = tmp_path / "params.yaml"
    p = yaml.safe_load(Path(argv[argv.index("--params") + 1]).read_text())
    p["align"]["jaffe"]["px"] = 40
    params_file.write_text(yaml.safe_dump(p))
    parts = root / "aligned" / ".jaffe.parts"
    old = {d.name for d in parts.iterdir() if d.is_dir()}
    argv = [*argv[:argv.index("--params") + 1], str(params_file), "--no-progress"]
    assert main(argv) == 0
    new = {d.name for d in parts.iterdir() if d.is_dir() and not d.name.startswith(".")}
    assert new and not (new & old)
    crops = pq.read_table(root / "aligned" / "jaffe" / "crops.parquet")
    assert set(crops.column("width").to_pylist()) == {40}


def test_missing_manifest_is_a_clear_error(tmp_path):
    from pipeline.align.dataset import manifest_file

    with pytest.raises(FileNotFoundError, match="manifest.parquet: manifest not found"):
        manifest_file(tmp_path)
