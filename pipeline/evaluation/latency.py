"""CPU latency per frame in ONNX Runtime, as a ratio against a reference network measured alongside.

Absolute milliseconds depend on the machine and on whatever else runs on it; a ratio measured
in the same process, with the two networks timed in alternating blocks, does not (much). The
reference is torchvision's MobileNetV2 at the same input (random initialisation, nothing
downloaded; its first convolution takes the model's channel count), the comparison EAN's paper
makes in its Table 5 (MobileNetV2 6.010 ms vs EAN 1.985 ms: 3.0x).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def reference_network(in_chans: int, num_classes: int) -> "torch.nn.Module":  # noqa: F821
    """MobileNetV2 (random init) taking ``in_chans`` channels, ``num_classes`` outputs."""
    import torch
    import torchvision

    net = torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes)
    if in_chans != 3:
        first = net.features[0][0]
        net.features[0][0] = torch.nn.Conv2d(in_chans, first.out_channels, first.kernel_size, first.stride,
                                             first.padding, bias=False)
    return net.eval()


def time_sessions(sessions: dict[str, Any], input_shape: Sequence[int], runs: int = 200, warmup: int = 20,
                  block: int = 10, seed: int = 0) -> dict[str, float]:
    """Median milliseconds per call of each ONNX Runtime session on one random batch.

    The sessions run in alternating blocks of ``block`` calls so that a load change on the
    machine hits all of them alike.
    """
    from pipeline.evaluation.onnx_export import run_onnx

    x = np.random.default_rng(seed).standard_normal(input_shape).astype(np.float32)
    for sess in sessions.values():
        for _ in range(warmup):
            run_onnx(sess, x)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    while min(len(t) for t in times.values()) < runs:
        for name, sess in sessions.items():
            for _ in range(block):
                t0 = time.perf_counter()
                run_onnx(sess, x)
                times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t) * 1000.0) for name, t in times.items()}


def latency_vs_reference(model: "torch.nn.Module", input_shape: Sequence[int], workdir: str | Path,  # noqa: F821
                         runs: int = 200, threads: int = 1, model_onnx: str | Path | None = None) -> dict[str, Any]:
    """Export ``model`` and the reference to ONNX in ``workdir`` and time both at batch 1.

    Args:
        input_shape: ``(1, C, H, W)``.
        model_onnx: where to keep the model's ONNX file (default ``workdir/model.onnx``).

    Returns:
        ``{"ms_per_frame", "reference_ms_per_frame", "reference", "ratio", "runs", "threads",
        "input_shape"}`` where ``ratio`` = reference ms / model ms (> 1: faster than the reference).
    """
    from pipeline.evaluation.onnx_export import export_onnx, onnx_session

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    input_shape = tuple(int(s) for s in input_shape)
    model_path = Path(model_onnx) if model_onnx else workdir / "model.onnx"
    export_onnx(model, input_shape, model_path)
    num_classes = int(_num_outputs(model, input_shape))
    ref_path = export_onnx(reference_network(input_shape[1], num_classes), input_shape, workdir / "reference.onnx")
    ms = time_sessions({"model": onnx_session(model_path, threads), "reference": onnx_session(ref_path, threads)},
                       input_shape, runs=runs)
    return {"ms_per_frame": ms["model"], "reference_ms_per_frame": ms["reference"], "reference": "mobilenet_v2",
            "ratio": ms["reference"] / ms["model"], "runs": runs, "threads": threads,
            "input_shape": list(input_shape)}


def _num_outputs(model, input_shape) -> int:
    import torch

    with torch.no_grad():
        return model.eval()(torch.zeros(*input_shape)).shape[1]
