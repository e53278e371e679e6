"""Where networks run: one ``device`` setting (params.yaml top level, a stage's --device over it), one
rule (``pipeline.core.device.resolve_device``), one-line errors for a device the machine lacks.

Machines with and without CUDA are simulated by patching ``torch.cuda``, so every case runs here.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import write_params

from pipeline.cli import main
from pipeline.core.device import DeviceError, resolve_device, stage_device
from pipeline.core.schema import ParamsError, validate

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without CUDA (whatever this one has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def one_gpu(monkeypatch):
    """A machine with one CUDA GPU, as far as device selection can tell (nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_auto_falls_back_to_the_cpu_without_cuda_and_takes_the_gpu_with_it(no_cuda, monkeypatch):
    assert resolve_device("auto") == resolve_device(None) == resolve_device("") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:0"])
def test_a_device_the_machine_has_is_taken_as_named(one_gpu, name):
    assert resolve_device(name) == torch.device(name)


@pytest.mark.parametrize(("name", "where", "message"), [
    ("cuda", "--device", "--device cuda: CUDA is not available on this machine"),
    ("cuda:1", "params.yaml: device", "params.yaml: device cuda:1: CUDA is not available on this machine"),
    ("gpu", "--device", "--device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("CUDA", "--device", "--device: expected auto, cpu, cuda, cuda:N or mps, got 'CUDA'"),
])
def test_a_device_the_machine_lacks_or_an_unknown_name_is_one_line(no_cuda, name, where, message):
    with pytest.raises(DeviceError) as err:
        resolve_device(name, where)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_a_gpu_index_beyond_the_machines_is_refused(one_gpu):
    with pytest.raises(DeviceError, match=r"--device cuda:2: this machine has 1 CUDA device\(s\), cuda:0..cuda:0"):
        resolve_device("cuda:2", "--device")


def test_mps_without_mps_is_refused(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="mps: Apple's MPS is not available"):
        resolve_device("mps")


def test_the_flag_overrides_the_params_file_which_overrides_auto(tmp_path, one_gpu):
    params = write_params(tmp_path / "params.yaml")  # device: cpu
    assert stage_device(None, params) == torch.device("cpu")
    assert stage_device("cuda", params) == torch.device("cuda")
    data = yaml.safe_load(params.read_text())
    del data["device"]
    params.write_text(yaml.safe_dump(data))
    assert stage_device(None, params) == torch.device("cuda")  # no key: auto


@pytest.mark.parametrize(("path", "value", "message"), [
    ("device", "gpu", "device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("train.defaults.device", "cuda", "train.defaults.device: moved to the top-level key `device`"),
    ("train.ean.device", "cpu", "train.ean.device: moved to the top-level key `device`"),
    ("distill.defaults.device", "cpu", "distill.defaults.device: moved to the top-level key `device`"),
])
def test_the_device_lives_in_one_place(path, value, message):
    p = copy.deepcopy(BASE)
    *parents, key = path.split(".")
    node = p
    for k in parents:
        node = node[k]
    node[key] = value
    with pytest.raises(ParamsError) as err:
        validate(p, "params.yaml")
    assert str(err.value).startswith(f"params.yaml: {message}")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("argv", [
    ["train", "--model", "ean", "--dataset", "ckplus", "--data", "none"],
    ["distill", "--dataset", "ckplus", "--data", "none"],
    ["evaluate", "--model", "ean", "--dataset", "ckplus", "--data", "none"],
    ["cv", "ckplus", "--data", "none"],
    ["align", "jaffe", "--manifest", "none", "--out", "unused"],
    ["pretrain", "--out", "unused"],
])
def test_device_cuda_on_a_cpu_machine_stops_the_stage_at_once_with_one_line(tmp_path, no_cuda, capsys,
                                                                            monkeypatch, argv):
    """Before reading any data (none exists here): exit 2 and one line naming --device."""
    monkeypatch.chdir(tmp_path)
    params = write_params(tmp_path / "params.yaml")
    build = "built without CUDA" if torch.version.cuda is None else f"CUDA {torch.version.cuda} build, no GPU visible"
    assert main([*argv, "--params", str(params), "--device", "cuda"]) == 2
    assert capsys.readouterr().err == (f"fer-pipeline {argv[0]}: error: --device cuda: CUDA is not available on "
                                       f"this machine (torch {torch.__version__}, {build}); use cpu or auto\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written


def test_params_device_cuda_on_a_cpu_machine_names_the_file_and_key(tmp_path, no_cuda, capsys):
    params = write_params(tmp_path / "params.yaml")
    data = yaml.safe_load(params.read_text())
    data["device"] = "cuda"
    params.write_text(yaml.safe_dump(data))
    assert main(["evaluate", "--model", "ean", "--dataset", "ckplus", "--params", str(params)]) == 2
    assert capsys.readouterr().err.startswith(f"fer-pipeline evaluate: error: {params}: device cuda: CUDA is not available")


def test_align_keys_gpu_parts_apart_and_leaves_cpu_keys_and_summaries_as_they_were():
    """MTCNN's device travels in the align settings: the CPU adds nothing to their record (parts and
    summary.json of a CPU run keep their bytes), a GPU is recorded (its parts are never reused on the
    CPU, whose last bits may differ), whichever GPU of the machine it was."""
    import dataclasses

    from pipeline.align.settings import AlignSettings

    cpu = AlignSettings.from_dict({"px": 96})
    assert cpu.device == "cpu" and "device" not in cpu.to_dict()
    assert set(cpu.to_dict()) == {f.name for f in dataclasses.fields(AlignSettings)} - {"device"}
    gpu, other_gpu = (dataclasses.replace(cpu, device=d) for d in ("cuda", "cuda:1"))
    assert gpu.to_dict() == {**cpu.to_dict(), "device": "cuda"} == other_gpu.to_dict()
    assert gpu.fingerprint() == other_gpu.fingerprint() != cpu.fingerprint()
