"""Run a network on a preprocessed batch: PyTorch (a checkpoint or a TorchScript export) or ONNX Runtime.

Every backend takes a float32 ``(B, C, H, W)`` numpy batch and returns the logits as numpy, so the
predictor does not care which one it has. :func:`open_model` opens a checkpoint or an exported
file with its :class:`~pipeline.inference.spec.ModelSpec`; every failure is a one-line
:class:`~pipeline.inference.spec.ModelError` naming the file.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.inference.spec import METADATA_KEY, ModelError, ModelSpec, override_detection, spec_from_checkpoint

#: the file inside a TorchScript archive that holds the spec
TORCHSCRIPT_SPEC = "fer_pipeline.json"
ONNX_SUFFIXES = (".onnx",)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of ``(n, K)`` logits (float64 arithmetic, float32 result)."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class TorchBackend:
    """A ``torch.nn.Module`` (or TorchScript module) in eval mode on ``device``."""

    name = "pytorch"

    def __init__(self, module: Any, device: Any) -> None:
        self.module, self.device = module, device

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(x).to(self.device)).float().cpu().numpy()


class OnnxBackend:
    """An ONNX Runtime session (CPU, or CUDA where onnxruntime has the provider)."""

    name = "onnxruntime"

    def __init__(self, session: Any, device: Any = "cpu") -> None:
        self.session, self.device = session, device

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from pipeline.evaluation.onnx_export import run_onnx

        return run_onnx(self.session, x)


def load_checkpoint_model(path: str | os.PathLike, device: Any = "cpu") -> tuple[Any, dict[str, Any]]:
    """What :func:`pipeline.training.checkpoint.load_model` does, in its two steps so that each
    failure is one line naming the file: reading it, then fitting its weights to its network."""
    from pipeline.training.checkpoint import build_model, read_checkpoint

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        ckpt = read_checkpoint(path)
    except (FileNotFoundError, ValueError) as exc:  # read_checkpoint's own one-line errors
        raise ModelError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds on a damaged file
        raise ModelError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:160]})") from None
    try:
        network = build_model(ckpt["model"], ckpt["num_classes"], ckpt["in_chans"], ckpt["model_args"])
        network.load_state_dict(ckpt["state_dict"])
    except Exception as exc:  # noqa: BLE001 - an unknown model, wrong knobs, weights of another shape
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: the weights do not fit the network it names ({first[:200]})") from None
    return network.to(device).eval(), ckpt


def device_request(name: str | None, params: str | os.PathLike | None = None,
                   near: str | os.PathLike | None = None) -> tuple[str, str]:
    """The device asked for and where: ``name`` (``--device``) when given, else the top-level
    ``device`` of the params file :func:`~pipeline.inference.spec.find_params` finds, else ``auto``."""
    if name:
        return name, "--device"
    from pipeline.core.params import load
    from pipeline.inference.spec import find_params

    found, _ = find_params(params, near)
    setting = load(found).get("device") if found else None
    return (setting, f"{found}: device") if setting else ("auto", "--device")


def checked_device(name: str, where: str = "--device") -> Any:
    """:func:`pipeline.core.device.resolve_device` (the one rule), its refusal as a :class:`ModelError`."""
    from pipeline.core.device import resolve_device

    try:
        return resolve_device(name, where)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(" ".join(str(exc).split())) from None


def open_model(checkpoint: str | os.PathLike | None = None, model: str | os.PathLike | None = None,
               params: str | os.PathLike | None = None, device: str | None = None,
               threads: int | None = None) -> tuple[ModelSpec, Any]:
    """The spec and a backend of a checkpoint (PyTorch) or of an exported ``.onnx`` / TorchScript file.

    Args:
        checkpoint: a ``checkpoint.pt`` written by train or distill.
        model: a file written by ``fer-pipeline export`` (``.onnx``: ONNX Runtime; else TorchScript).
        params: a params file named by the user (see :mod:`pipeline.inference.spec`).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; ``None``: see :func:`device_request`.
        threads: ONNX Runtime intra-op threads (default: torch's thread count).
    """
    if checkpoint is not None and model is not None:
        raise ModelError("give one model: --checkpoint (train/distill output) or --model (an exported file)")
    name, where = device_request(device, params, checkpoint if checkpoint is not None else model)
    dev = checked_device(name, where)
    if checkpoint is None and model is None:
        spec, network = shipped_model()
        return override_detection(spec, params), TorchBackend(network.to(dev), dev)
    if checkpoint is not None:
        network, ckpt = load_checkpoint_model(checkpoint, dev)
        return spec_from_checkpoint(ckpt, checkpoint, params), TorchBackend(network, dev)
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.suffix.lower() in ONNX_SUFFIXES:
        spec, backend = _open_onnx(path, dev, threads, auto=name == "auto")
    else:
        spec, backend = _open_torchscript(path, dev)
    return override_detection(spec, params), backend


def _open_onnx(path: Path, device: Any, threads: int | None, auto: bool = False) -> tuple[ModelSpec, OnnxBackend]:
    import onnxruntime as ort
    import torch

    from pipeline.evaluation.onnx_export import onnx_session

    providers = None
    if device.type == "cuda" and auto and "CUDAExecutionProvider" not in ort.get_available_providers():
        device = torch.device("cpu")  # auto: the GPU only where this onnxruntime can use it
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ModelError(f"{path}: --device {device}: this onnxruntime has no CUDA provider "
                             f"(install onnxruntime-gpu, or use --device cpu)")
        providers = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    elif device.type != "cpu":
        raise ModelError(f"{path}: --device {device}: ONNX models run on cpu or cuda")
    try:
        session = onnx_session(path, threads or torch.get_num_threads(), providers=providers, spin=False)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ModelError(f"{path}: not a readable ONNX model ({' '.join(str(exc).split())[:160]})") from None
    meta = session.get_modelmeta().custom_metadata_map
    return ModelSpec.from_json(meta.get(METADATA_KEY), str(path)), OnnxBackend(session, device)


def _open_torchscript(path: Path, device: Any) -> tuple[ModelSpec, TorchBackend]:
    import torch

    extra = {TORCHSCRIPT_SPEC: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice (see export.py)
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - a zip error, a pickle error, a foreign archive...
        raise ModelError(f"{path}: not a TorchScript model (.onnx for ONNX) "
                         f"({' '.join(str(exc).split())[:160]})") from None
    raw = extra[TORCHSCRIPT_SPEC]
    spec = ModelSpec.from_json(raw.decode() if isinstance(raw, bytes) else raw, str(path))
    return spec, TorchBackend(module.eval(), device)


def shipped_model() -> tuple[ModelSpec, Any]:
    """The spec and network of the model shipped inside fer_models (``fer-pipeline publish``):
    ``create_model(DEFAULT_SHIPPED, pretrained=True)``, its hash checked; :class:`ModelError` when none ships."""
    import fer_models
    from fer_models.pretrained import DEFAULT_SHIPPED, PACKAGE_WEIGHTS, shipped_cfg

    card = shipped_cfg(DEFAULT_SHIPPED)
    if card is None:
        raise ModelError(f"give a model: --checkpoint (train/distill output) or --model (an exported file); "
                         f"no model ships in {PACKAGE_WEIGHTS} yet (`fer-pipeline publish` puts one there)")
    where = str(PACKAGE_WEIGHTS / card["file"])
    spec = ModelSpec.from_json(json.dumps(card["spec"]), where)
    try:
        network = fer_models.create_model(DEFAULT_SHIPPED, num_classes=len(card["classes"]), in_chans=int(card["input_size"][0]),
                                          pretrained=True, **card.get("model_args", {}))
    except (ValueError, FileNotFoundError) as exc:
        raise ModelError(str(exc)) from None
    prov = card.get("provenance") or {}
    acc = prov.get("validation_accuracy")
    return replace(spec, source=f"the model shipped in fer_models ({where}; trained on {prov.get('dataset')}"
                                f"{'' if acc is None else f', validation accuracy {100 * acc:.2f}%'})"), network.eval()
