"""Checks every model of the zoo must pass, shared by the per-model test files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

import fer_models


def build(name: str, seed: int = 0, **kwargs: Any) -> torch.nn.Module:
    torch.manual_seed(seed)
    return fer_models.create_model(name, **kwargs)


def check_forward_backward(model: torch.nn.Module, input_size: tuple[int, ...], batch: int = 2, num_classes: int = 7) -> None:
    """Train-mode forward gives finite ``(B, num_classes)`` logits and every trainable parameter gets a
    finite gradient (a frozen, pretrained part such as onet_probe's trunk gets none)."""
    model.train()
    x = torch.randn(batch, *input_size)
    y = model(x)
    assert y.shape == (batch, num_classes)
    assert torch.isfinite(y).all()
    y.logsumexp(dim=1).sum().backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name


def check_onnx(model: torch.nn.Module, input_size: tuple[int, ...], tmp_path: Path, batch: int = 3) -> None:
    """ONNX (opset 17) export runs in onnxruntime with a dynamic batch and matches PyTorch within 1e-4."""
    from pipeline.evaluation.onnx_export import export_onnx, onnx_session, run_onnx

    model.eval()
    path = export_onnx(model, (1, *input_size), tmp_path / "model.onnx")
    x = torch.randn(batch, *input_size)
    with torch.no_grad():
        expected = model(x).numpy()
    got = run_onnx(onnx_session(path), x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def check_deterministic_init(name: str, **kwargs: Any) -> None:
    """The same seed gives identical weights; another seed gives different ones."""
    a, b, c = build(name, 0, **kwargs).state_dict(), build(name, 0, **kwargs).state_dict(), build(name, 1, **kwargs).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point() and a[k].numel() > 1)
