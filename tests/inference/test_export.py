"""fer-pipeline export: one ONNX (or TorchScript) file holding the classes and preprocessing, which
predict runs from any directory with the checkpoint's labels and probabilities (within 1e-4)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from inference_helpers import NAMES, cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    """The checkpoint exported by the CLI in both formats, from a directory without params.yaml."""
    out = tmp_path_factory.mktemp("exported")
    results = {}
    for fmt, name in (("onnx", "ean.onnx"), ("torchscript", "ean.pt")):
        rc, stdout, err = cli("export", "--checkpoint", checkpoint, "--format", fmt, "--out", name, cwd=out)
        assert rc == 0, err
        assert "probabilities agree with the checkpoint" in stdout
        results[fmt] = out / name
    return results


def test_onnx_file_holds_classes_and_preprocessing(exported):
    import onnx

    props = {p.key: p.value for p in onnx.load(str(exported["onnx"])).metadata_props}
    assert json.loads(props["class_names"]) == NAMES
    assert json.loads(props["mean"]) == [0.5] and json.loads(props["std"]) == [0.5]
    assert json.loads(props["input_size"]) == [1, 20, 20]
    spec = json.loads(props["fer_pipeline"])
    assert spec["input"] == {"px": 20, "resize": 24, "channels": 1, "mean": [0.5], "std": [0.5], "equalize": False}
    assert spec["align"]["margin"] == 0.25 and set(spec["detection"]) == {"photos", "video"}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_predicts_what_the_checkpoint_predicts(fmt, exported, checkpoint, media, tmp_path):
    inputs = [media / "album" / "two.png", media / "album" / "nested" / "one.jpg", media / "clip.avi"]
    rc, out, err = cli("predict", "--checkpoint", checkpoint, *inputs, "--json", cwd=tmp_path)
    rc2, out2, err2 = cli("predict", "--model", exported[fmt], *inputs, "--json", cwd=tmp_path)
    assert rc == rc2 == 0, err2
    ref, got = json.loads(out), json.loads(out2)
    assert len(ref) == len(got) == 9 and all(r["status"] == "face" for r in ref)
    assert len({r["label"] for r in ref}) > 1 or max(r["confidence"] for r in ref) > 0.5  # not all ~1/3
    for a, b in zip(ref, got):
        assert (a["source"], a["frame"], a["face"], a["box"], a["label"]) == \
            (b["source"], b["frame"], b["face"], b["box"], b["label"])
        np.testing.assert_allclose([b["probabilities"][n] for n in NAMES], [a["probabilities"][n] for n in NAMES],
                                   atol=1e-4)
    assert ("onnxruntime" if fmt == "onnx" else "pytorch") in err2.splitlines()[0]


def test_export_is_deterministic(exported, checkpoint, tmp_path):
    rc, _, _ = cli("export", "--checkpoint", checkpoint, "--out", "again.onnx", cwd=tmp_path)  # format from suffix
    assert rc == 0 and (tmp_path / "again.onnx").read_bytes() == exported["onnx"].read_bytes()


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "missing.pt", "--out", "m.onnx"], "missing.pt: checkpoint not found"),
    (["--out", "model.bin"], "model.bin: give --format (onnx, torchscript) or name the file .onnx / .pt"),
])
def test_export_errors_are_one_line(argv, message, checkpoint, tmp_path):
    argv = argv if "--checkpoint" in argv else ["--checkpoint", checkpoint, *argv]
    rc, out, err = cli("export", *argv, cwd=tmp_path)
    assert rc == 2 and err.strip() == f"fer-pipeline export: error: {message}"
    assert not list(tmp_path.iterdir())
