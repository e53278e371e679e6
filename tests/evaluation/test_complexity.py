"""pipeline.evaluation.complexity: parameter and FLOP counts, both conventions, against hand counts and EAN's paper."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn

from pipeline.evaluation.complexity import count_flops, count_params, flop_analysis
from zoo_checks import build


def test_count_params_counts_parameters_not_buffers() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Linear(4, 2))
    assert count_params(model) == 3 * 8 * 9 + 16 + 4 * 2 + 2
    model[2].weight.requires_grad_(False)
    assert count_params(model, trainable_only=True) == 3 * 8 * 9 + 16 + 2


def test_conv_linear_and_bn_in_both_conventions() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    conv_macs, bn, pool, fc = 8 * 3 * 9 * 100, 2 * 8 * 100, 8 * 100, 8 * 5
    assert count_flops(model, (1, 3, 10, 10), "paper") == conv_macs + bn + fc
    assert count_flops(model, (1, 3, 10, 10)) == conv_macs + bn + pool + fc  # fvcore also counts the pool
    assert count_flops(model, (2, 3, 10, 10), "paper") == 2 * (conv_macs + bn + fc)


def test_counting_is_in_eval_mode_and_restores_the_mode() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fvcore's unsupported-op chatter stays quiet
        assert count_flops(model, (1, 1, 4, 4)) == 2 * 16 + 2 * 2 * 16
    assert model.training


def test_ean_flops_in_the_papers_convention() -> None:
    model = build("ean")
    analysis = flop_analysis(model.eval(), (1, 3, 44, 44), "paper")
    by_module = analysis.by_module()
    conv2d = sum(by_module[name] for name, m in model.named_modules() if isinstance(m, nn.Conv2d))
    assert conv2d == 4_567_536  # conv multiply-adds alone
    total = count_flops(model, (1, 3, 44, 44), "paper")
    assert round(total / 1e6, 3) == 5.054  # Table 1: 5.054 MFLOPs
    bn_outputs = sum(by_module[name] for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d))
    assert total == conv2d + bn_outputs  # ECA's 1-D convolutions are not counted
    eca = 3 * (8 + 16 + 16 + 32 + 32 + 64)
    assert count_flops(model, (1, 3, 44, 44), "fvcore") == total + eca  # fvcore counts them


def test_self_attention_matmuls_are_counted() -> None:
    plain, attn = build("resatt", attention="channel"), build("resatt", attention="channel_then_self")
    diff = count_flops(attn, (1, 1, 48, 48)) - count_flops(plain, (1, 1, 48, 48))
    # two (N x N x Cl) products per non-local block, N = 24^2, 12^2, 6^2 and Cl = C / 8
    bmm = sum(2 * n * n * c // 8 for n, c in ((576, 64), (144, 128), (36, 256)))
    assert diff > bmm


def test_unknown_convention() -> None:
    with pytest.raises(ValueError, match="unknown FLOP convention"):
        count_flops(nn.Linear(2, 2), (1, 2), "macs")
