"""ONNX export and ONNX Runtime inference (CPU) of the zoo's models, for latency and deployment.

The paper numbers this serves: EAN runs at 1.985 ms/frame in ONNX Runtime on a CPU (paper 004).
Export uses the TorchScript-based exporter (``dynamo=False``): it is deterministic (same weights,
same bytes), handles every model of the zoo at opset 17, and takes ~0.4 s for EAN where the
torch.export-based exporter takes 10-18 s on this 2-core machine (also deterministic, but too slow
for tests and per-model evaluation). Its deprecation warning is silenced here on purpose.

One exporter for ``evaluate`` (its ``model.onnx``) and ``fer-pipeline export``, which also stores
string ``metadata`` properties (class names, normalisation, input size, alignment: see
``pipeline.inference.spec``); ONNX Runtime reads them back with ``session.get_modelmeta()``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from pipeline.core.atomic import atomic_path

__all__ = ["export_onnx", "onnx_session", "run_onnx"]

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: Any, input_shape: Sequence[int], path: str | os.PathLike, opset: int = 17,
                metadata: Mapping[str, str] | None = None) -> Path:
    """Export ``model`` (in eval mode) to ``path`` with a dynamic batch axis; return the path.

    Args:
        model: a ``torch.nn.Module`` taking one image batch and returning logits.
        input_shape: example input shape ``(B, C, H, W)``; the batch axis is exported as dynamic.
        path: the ``.onnx`` file to write (atomically).
        opset: ONNX opset version (17 or newer).
        metadata: string properties stored in the model (``metadata_props``), in key order.

    Raises:
        ValueError: when ``opset < 17``.
    """
    import torch

    if opset < 17:
        raise ValueError(f"opset {opset} is too old: the zoo is exported at opset 17 or newer")
    path = Path(path)
    was_training = model.training
    model.eval()
    try:
        dummy = torch.zeros(*input_shape)
        with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (dummy,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
            if metadata:
                _set_metadata(tmp, metadata)
    finally:
        model.train(was_training)
    return path


def _set_metadata(path: Path, metadata: Mapping[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key in sorted(metadata):
        prop = model.metadata_props.add()
        prop.key, prop.value = str(key), str(metadata[key])
    onnx.save(model, str(path))


def onnx_session(path: str | os.PathLike, threads: int = 1, providers: Sequence[Any] | None = None,
                 spin: bool = True) -> Any:
    """An ONNX Runtime inference session on ``path`` using ``threads`` intra-op threads.

    One thread by default: latency figures are then comparable across machines and do not fight
    other processes for cores. ``providers`` defaults to the CPU only. ``spin=False`` lets idle
    worker threads sleep instead of spinning (``predict``: a core shared with other work).
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ONNX model not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=list(providers or ["CPUExecutionProvider"]))


def run_onnx(session: Any, x: Any) -> np.ndarray:
    """Run ``session`` on ``x`` (a float32 numpy array or torch tensor ``(B, C, H, W)``); return the logits."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.ascontiguousarray(x, dtype=np.float32)
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0]
