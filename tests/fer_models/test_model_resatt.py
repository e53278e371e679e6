"""ResAttNet (paper 000): the six attention settings, gamma = 0 identity, forward/backward, ONNX, init."""

from __future__ import annotations


import pytest
import torch

import fer_models
from fer_models.resatt import FUSIONS, AttentionFusion, AttentionResidualBlock
from zoo_checks import build

INPUT = (1, 48, 48)


def test_variants_cover_table1_and_default_is_channel_then_self() -> None:
    variants = fer_models.model_variants("resatt")
    assert {kw.get("attention", "channel_then_self") for kw in variants.values()} == set(FUSIONS)
    model = build("resatt")
    modes = {m.mode for m in model.modules() if isinstance(m, AttentionFusion)}
    assert modes == {"channel_then_self", "none"}  # attention modules + the plain downsampling blocks
    assert fer_models.model_default_cfg("resatt")["input_size"] == INPUT


def test_self_attention_is_exactly_identity_at_init() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 32, 6, 6)
    assert torch.equal(AttentionFusion(32, "self")(x), x)
    # channel-then-self at init is channel attention alone, self-then-channel too
    for mode in ("channel_then_self", "self_then_channel"):
        fusion = AttentionFusion(32, mode)
        assert torch.equal(fusion(x), fusion.channel_attn(x))
    parallel = AttentionFusion(32, "parallel")
    assert torch.equal(parallel(x), x + parallel.channel_attn(x))


def test_fusion_orders_differ_once_gamma_is_learned() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 32, 6, 6)
    a, b = AttentionFusion(32, "channel_then_self"), AttentionFusion(32, "self_then_channel")
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        a.self_attn.gamma.fill_(0.7)
        b.self_attn.gamma.fill_(0.7)
    torch.testing.assert_close(a(x), a.self_attn(a.channel_attn(x)))
    torch.testing.assert_close(b(x), b.channel_attn(b.self_attn(x)))
    assert not torch.allclose(a(x), b(x))


def test_attention_sits_on_the_residual_branch() -> None:
    torch.manual_seed(0)
    block = AttentionResidualBlock(16, 16, attention="channel").eval()
    x = torch.randn(1, 16, 6, 6)
    torch.testing.assert_close(block(x), torch.relu(x + block.attn.channel_attn(block.body(x))))


def test_unknown_fusion_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown attention fusion 'serial'"):
        AttentionFusion(8, "serial")
