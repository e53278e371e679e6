"""Model complexity: parameter counts and FLOPs, with fvcore doing the counting.

Two FLOP conventions, both counted by ``fvcore.nn.FlopCountAnalysis`` on a traced forward pass in
eval mode:

* ``"fvcore"`` (default): fvcore's own handles -- one multiply-add of a convolution, linear layer or
  matrix product counts as **one** flop; eval-mode batch norm counts 2 per output element (1 without
  affine); adaptive average pooling, upsampling and other norms count their elements; element-wise
  ops (ReLU, sigmoid, add, mul, softmax) count nothing.
* ``"paper"``: the convention of EAN's paper (paper 004, Table 1): multiply-adds of 2-D (and 3-D)
  convolutions, linear layers and matrix products + 2 x the output elements of every batch norm,
  nothing else -- 1-D convolutions (ECA's 3 weights per channel) are not counted. EAN at 3x44x44
  gives 5,054,158 = 4,567,536 conv MACs + 486,622 BN flops (paper: 5.054 M); with ECA's 504 MACs
  it would round to 5.055 M, and the Table 1 rows a, c, d, f match to the last digit only without.

fvcore warns about every operator it has no handle for (sigmoid, add, ...); those warnings are
silenced here because the conventions above define them as free.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Iterator, Sequence

import torch
import torch.nn as nn

__all__ = ["count_params", "count_flops", "FLOP_CONVENTIONS"]

FLOP_CONVENTIONS = ("fvcore", "paper")

def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _quiet_fvcore() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    stack.callback(logger.setLevel, level)
    return stack


def _conv_flop_without_1d(inputs: list, outputs: list) -> int:
    """fvcore's convolution count, 0 for 1-D convolutions (the paper convention leaves ECA out)."""
    from fvcore.nn import jit_handles as h

    return 0 if len(h.get_shape(inputs[0])) == 3 else h.conv_flop_jit(inputs, outputs)


def flop_analysis(model: nn.Module, input_shape: Sequence[int], convention: str = "fvcore"):
    """A configured fvcore flop analysis of ``model`` on a zero batch of ``input_shape``.

    The model is traced lazily by ``.total()``, ``.by_module()`` or ``.by_operator()``; put it in eval
    mode first (batch norm counts differently in training). :func:`count_flops` does both and also
    silences the tracer's warnings.
    """
    if convention not in FLOP_CONVENTIONS:
        raise ValueError(f"unknown FLOP convention {convention!r}; known: {', '.join(FLOP_CONVENTIONS)}")
    x = torch.zeros(*input_shape)
    if convention == "fvcore":
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, x)
    else:
        from fvcore.nn import jit_handles as h
        from fvcore.nn.jit_analysis import JitModelAnalysis

        # multiply-adds of convolutions, linear layers and matrix products + 2 x BN outputs, nothing else
        analysis = JitModelAnalysis(model, x).set_op_handle(**{
            "aten::_convolution": _conv_flop_without_1d,
            "aten::addmm": h.addmm_flop_jit,
            "aten::bmm": h.bmm_flop_jit,
            "aten::einsum": h.einsum_flop_jit,
            "aten::linear": h.linear_flop_jit,
            "aten::matmul": h.matmul_flop_jit,
            "aten::mm": h.matmul_flop_jit,
            "aten::batch_norm": h.batchnorm_flop_jit,
        })
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis


def count_flops(model: nn.Module, input_shape: Sequence[int], convention: str = "fvcore") -> int:
    """FLOPs of one forward pass of ``model`` on a tensor of ``input_shape`` (batch included).

    Args:
        model: the network; counted in eval mode (its mode is restored afterwards).
        input_shape: e.g. ``(1, 3, 44, 44)``; pass batch 1 for per-image FLOPs.
        convention: ``"fvcore"`` or ``"paper"`` (see the module docstring).

    Returns:
        The total count (one multiply-add = one flop in both conventions).
    """
    with _eval_mode(model), torch.no_grad(), _quiet_fvcore():
        return int(flop_analysis(model, input_shape, convention).total())
