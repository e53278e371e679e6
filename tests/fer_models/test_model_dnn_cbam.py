"""DNN-CBAM (paper 001): modules, CBAM on/off, AM-Softmax head and loss, forward/backward, ONNX, init."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import fer_models
from fer_models.heads import AMSoftmaxHead, AMSoftmaxLoss, loss_for
from fer_models.layers import CbamModule
from pipeline.evaluation.complexity import count_params
from zoo_checks import build

INPUT = (1, 48, 48)


def test_structure_follows_the_paper() -> None:
    model = build("dnn_cbam").eval()
    assert [m.out_channels for m in model.stem if isinstance(m, nn.Conv2d)] == [32, 32]
    assert [b.body[1].out_channels for b in model.middle] == [32, 64, 128, 256]
    depthwise = [m for m in model.middle.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 8 and all(m.groups == m.in_channels for m in depthwise)
    assert isinstance(model.attn, CbamModule)
    assert isinstance(model.head, AMSoftmaxHead)
    x = torch.randn(2, *INPUT)
    assert model.middle(model.stem(x)).shape == (2, 256, 3, 3)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 256)


def test_cbam_off_removes_exactly_the_cbam() -> None:
    with_cbam, without = build("dnn_cbam"), build("dnn_cbam", cbam=False)
    assert isinstance(without.attn, nn.Identity)
    assert count_params(with_cbam) - count_params(without) == count_params(CbamModule(256))


def test_am_softmax_head_gives_scaled_cosines() -> None:
    torch.manual_seed(0)
    head = AMSoftmaxHead(16, 7, scale=30.0)
    x = torch.randn(5, 16)
    logits = head(x)
    expected = 30.0 * F.normalize(x, dim=1) @ F.normalize(head.weight, dim=1).T
    torch.testing.assert_close(logits, expected)
    assert logits.abs().max() <= 30.0 + 1e-4
    torch.testing.assert_close(head(3.0 * x), logits)  # invariant to the feature norm


def test_am_softmax_loss_subtracts_the_margin_from_the_target_only() -> None:
    torch.manual_seed(0)
    cos = torch.rand(4, 7) * 2 - 1
    target = torch.tensor([0, 3, 6, 2])
    s, m = 30.0, 0.35
    loss = AMSoftmaxLoss(margin=m, scale=s)(s * cos, target)
    rows = torch.arange(4)
    manual = -(s * (cos[rows, target] - m) - torch.logsumexp(
        torch.where(F.one_hot(target, 7).bool(), s * (cos - m), s * cos), dim=1)).mean()
    torch.testing.assert_close(loss, manual)
    torch.testing.assert_close(AMSoftmaxLoss(margin=0.0, scale=s)(s * cos, target), F.cross_entropy(s * cos, target))
    assert loss > F.cross_entropy(s * cos, target)  # the margin makes the target harder


def test_loss_for_matches_the_head() -> None:
    am = loss_for(build("dnn_cbam"))
    assert isinstance(am, AMSoftmaxLoss) and am.scale == 30.0 and math.isclose(am.margin, 0.35)
    assert isinstance(loss_for(build("dnn_cbam", head="softmax")), nn.CrossEntropyLoss)
    assert isinstance(loss_for(build("ean")), nn.CrossEntropyLoss)


def test_unknown_head_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown head 'arcface'"):
        fer_models.create_model("dnn_cbam", head="arcface")


def test_training_with_am_softmax_loss_reduces_it() -> None:
    torch.manual_seed(0)
    model = build("dnn_cbam")
    criterion = loss_for(model)
    x, y = torch.randn(8, *INPUT), torch.arange(8) % 7
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
