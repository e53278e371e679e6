"""EAN (paper 004): exact parameter counts of Tables 1 and 6, structure, forward/backward, ONNX, init."""

from __future__ import annotations


import pytest
import torch

import fer_models
from fer_models.ean import InvertedResidual
from pipeline.evaluation.complexity import count_flops, count_params
from zoo_checks import build, check_forward_backward

INPUT = (3, 44, 44)


def test_ean_has_exactly_the_papers_parameter_counts() -> None:
    assert count_params(build("ean")) == 43_840
    assert count_params(build("ean", attention=False)) == 43_822  # Table 6: ECA adds exactly 18


@pytest.mark.parametrize(("config", "params", "mflops"), [
    ("model_a", 76_608, 20.892), ("model_c", 68_752, 9.446), ("model_d", 53_280, 11.723), ("model_f", 52_024, 5.126),
])
def test_table1_rows_match_the_paper(config: str, params: int, mflops: float) -> None:
    model = build("ean", config=config)
    assert count_params(model) == params
    assert round(params / 1e6, 3) == fer_models.model_default_cfg("ean")["variants"][config]["paper_params"] / 1e6
    assert round(count_flops(model, (1, *INPUT), "paper") / 1e6, 3) == mflops


def test_ean_structure_strides_shortcuts_and_attention() -> None:
    model = build("ean").eval()
    blocks = list(model.blocks)
    assert [b.depthwise[0].stride[0] for b in blocks] == [2, 2, 1, 2, 1, 2]
    assert [i for i, b in enumerate(blocks, 1) if b.shortcut] == [3, 5]
    assert all(isinstance(b, InvertedResidual) and count_params(b.attn) == 3 for b in blocks)
    assert all(m.bias is None for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d)))
    assert [b.expand[0].out_channels for b in blocks] == [48, 48, 96, 96, 192, 96]  # hidden = c_in * e
    x = torch.randn(2, *INPUT)
    assert model.forward_features(x).shape == (2, 64, 3, 3)  # 44 -> 22 -> 11 -> 6 -> 3
    assert model.tail[0].out_channels == 7 and model.tail[0].kernel_size == (3, 3)
    torch.testing.assert_close(model(x), model.tail(model.forward_features(x)).mean((2, 3)))


def test_ean_shortcut_block_adds_its_input() -> None:
    torch.manual_seed(0)
    block = InvertedResidual(16, 16, 1, 6, attention=True, shortcut=True).eval()
    x = torch.randn(1, 16, 8, 8)
    torch.testing.assert_close(block(x), x + block.attn(block.project(block.depthwise(block.expand(x)))))
    with pytest.raises(ValueError, match="shortcut"):
        InvertedResidual(16, 32, 1, 6, attention=True, shortcut=True)


def test_unknown_config_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown EAN config 'model_z'"):
        fer_models.create_model("ean", config="model_z")


def test_other_class_counts() -> None:
    check_forward_backward(build("ean", num_classes=8), INPUT, num_classes=8)


@pytest.mark.parametrize("in_chans", [1, 3])
def test_head_init_onet_starts_the_head_from_onets_strongest_conv1_filters(in_chans: int) -> None:
    from fer_models.onet_probe import onet_trunk

    conv1 = onet_trunk(pretrained=True).conv1.weight.detach()
    grey = conv1.sum(dim=1, keepdim=True) if in_chans == 1 else conv1  # grey = the same image in R, G, B
    model = fer_models.create_model("ean", in_chans=in_chans, head_init="onet")
    head = model.head[0].weight.detach()
    assert head.shape == (16, in_chans, 3, 3)
    norms = grey.flatten(1).norm(dim=1)
    for filt in head:  # each head filter is one of ONet's, and they are the 16 of largest norm
        match = [i for i in range(32) if torch.equal(filt, grey[i])]
        assert len(match) == 1 and (norms > norms[match[0]]).sum() < 16
    default = fer_models.create_model("ean", in_chans=in_chans)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in default.parameters())
    assert not torch.equal(default.head[0].weight, head)


def test_unknown_head_init_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown EAN head_init 'imagenet'"):
        fer_models.create_model("ean", head_init="imagenet")


def test_freeze_head_keeps_the_head_convolution_fixed_in_training() -> None:
    torch.manual_seed(0)
    model = fer_models.create_model("ean", in_chans=1, num_classes=3, head_init="onet", freeze_head=True)
    head_before = model.head[0].weight.detach().clone()
    bn_before = model.head[1].weight.detach().clone()
    tail_before = model.tail[0].weight.detach().clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, y = torch.randn(8, 1, 44, 44), torch.arange(8) % 3
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert torch.equal(model.head[0].weight, head_before)       # the ONet filters stay as they are
    assert not torch.equal(model.head[1].weight, bn_before)     # the head's batch norm still learns
    assert not torch.equal(model.tail[0].weight, tail_before)
