"""The CUDA path: pinned batches, the CUDA RNG state in ``last.pt``, training, resuming, scoring and MTCNN
on a GPU. The rules run everywhere (CUDA simulated where a GPU is absent); what needs a real GPU runs
where ``torch.cuda.is_available()`` and is skipped, saying so, elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_helpers import RECIPE, tiny_shards

from pipeline.training import recipe as recipe_mod
from pipeline.training.data import load_split_data, make_loader

pytestmark = pytest.mark.usefixtures("one_torch_thread")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine")

#: a recipe whose training draws from the CUDA RNG on a GPU (dropout 0.5 in onet_probe's head)
PROBE = {**RECIPE, "epochs": 3, "input": {"px": 24, "resize": 24, "channels": 1, "mean": [0.5], "std": [0.5]},
         "augment": {"crop": "none", "flip": 0.5}, "model_args": {"img_size": 24, "pretrained": False}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_split_data(tiny_shards(tmp_path_factory.mktemp("cuda"), "ckplus", "ratio") / "ckplus")


def test_batches_are_pinned_only_when_they_go_to_a_gpu(data):
    assert make_loader(data.train, 4, shuffle=False, device="cuda").pin_memory is True
    assert make_loader(data.train, 4, shuffle=False, device=torch.device("cuda:0")).pin_memory is True
    for device in ("cpu", torch.device("cpu"), None):
        assert make_loader(data.train, 4, shuffle=False, device=device).pin_memory is False


def test_the_cuda_rng_state_is_saved_and_restored_with_the_cpu_one(monkeypatch):
    """Simulated GPU: what rng_state saves and set_rng_state gives back to torch.cuda."""
    cpu_only = recipe_mod.rng_state()
    assert "cuda" not in cpu_only or torch.cuda.is_initialized()  # a CPU run's state is as before
    states = [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([3, 4], dtype=torch.uint8)]
    restored = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: list(states))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: restored.__setitem__(device, s))
    saved = recipe_mod.rng_state()
    assert saved["cuda"] == states and torch.equal(saved["torch"], cpu_only["torch"])
    recipe_mod.set_rng_state(saved)
    assert restored == {0: states[0], 1: states[1]}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # resumed on a machine without CUDA
    restored.clear()
    recipe_mod.set_rng_state(saved)
    assert restored == {}


@needs_cuda
def test_training_on_the_gpu_resumes_exactly_and_loads_on_the_cpu(data, tmp_path):
    from pipeline.training.checkpoint import load_model
    from pipeline.training.train_model import train_model

    full, _ = train_model(data, "onet_probe", PROBE, tmp_path / "full", dataset="ckplus", device="cuda")
    with pytest.raises(KeyboardInterrupt):
        train_model(data, "onet_probe", PROBE, tmp_path / "cut", dataset="ckplus", device="cuda", stop_after_epoch=1)
    assert "cuda" in torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["rng"]
    resumed, _ = train_model(data, "onet_probe", PROBE, tmp_path / "cut", dataset="ckplus", device="cuda")
    assert resumed.resumed_from == 1
    assert all(torch.equal(full.best_state[k], resumed.best_state[k]) for k in full.best_state)
    model, ckpt = load_model(tmp_path / "full" / "checkpoint.pt")  # written on the GPU, read on the CPU
    assert all(v.device.type == "cpu" for v in ckpt["state_dict"].values())
    assert next(model.parameters()).device.type == "cpu"


@needs_cuda
def test_scoring_on_the_gpu_agrees_with_the_cpu(data, tmp_path):
    from pipeline.evaluation.scoring import score
    from pipeline.training.checkpoint import load_model
    from pipeline.training.train_model import train_model

    train_model(data, "ean", {**RECIPE, "epochs": 1}, tmp_path / "ean", dataset="ckplus", device="cpu")
    cpu_model, ckpt = load_model(tmp_path / "ean" / "checkpoint.pt", "cpu")
    gpu_model, _ = load_model(tmp_path / "ean" / "checkpoint.pt", "cuda")
    on_cpu = score(cpu_model, ckpt, data.test, ten_crop=True, device="cpu")
    on_gpu = score(gpu_model, ckpt, data.test, ten_crop=True, device="cuda")
    np.testing.assert_array_equal(on_cpu.y_true, on_gpu.y_true)
    np.testing.assert_allclose(on_gpu.ten_crop, on_cpu.ten_crop, atol=1e-4)


@needs_cuda
def test_mtcnn_batches_run_on_the_gpu_and_find_the_cpus_faces():
    from skimage import data as images

    from pipeline.align.detector import detect_faces, get_mtcnn
    from pipeline.align.settings import DetectionSettings

    s = DetectionSettings(max_side=512)
    photos = [images.astronaut(), np.ascontiguousarray(images.astronaut()[:, ::-1])]
    on_cpu = detect_faces(photos, s, "cpu")
    on_gpu = detect_faces(photos, s, "cuda")
    assert next(get_mtcnn(s.min_face_size, s.factor, tuple(s.thresholds), "cuda").parameters()).device.type == "cuda"
    for a, b in zip(on_cpu, on_gpu):
        assert len(a) == len(b) >= 1
        np.testing.assert_allclose(a[0].box, b[0].box, atol=1.0)
        np.testing.assert_allclose(a[0].landmarks, b[0].landmarks, atol=1.0)
