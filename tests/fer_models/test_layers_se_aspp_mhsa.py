"""SE-ASPP (paper 002), conv-made multi-head self-attention, LayerNorm2d and FSA (paper 003)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from fer_models.layers import (
    FastSelfAttention,
    LayerNorm2d,
    MultiHeadSelfAttention2d,
    SEAsppModule,
    create_attn,
)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_se_aspp_parameter_count_follows_its_layout() -> None:
    c, h = 64, 4  # r = 16
    m = SEAsppModule(c, rates=(2, 4, 6))
    branches = c * 1 + 3 * c * 9 + 4 * 2 * c  # 1x1 dw, three 3x3 dw, their BNs
    fuse = c * 5 + c  # 5 descriptors per channel (+ image pooling), grouped 1x1
    excitation = (c * h + h) + (h * c + c)
    assert n_params(m) == branches + fuse + excitation


def test_se_aspp_squeeze_starts_as_the_mean_of_the_branch_descriptors() -> None:
    torch.manual_seed(0)
    m = SEAsppModule(16, rates=(1, 2, 3)).eval()
    x = torch.randn(2, 16, 9, 9)
    pooled = [x.mean(dim=(2, 3))] + [b(x).mean(dim=(2, 3)) for b in m.branches]
    expected = torch.stack(pooled).mean(dim=0)
    torch.testing.assert_close(m.squeeze(x).flatten(1), expected)


def test_se_aspp_gates_each_channel_and_depends_on_the_dilated_branches() -> None:
    torch.manual_seed(0)
    m = SEAsppModule(16, rates=(2, 4)).eval()
    x = torch.randn(2, 16, 12, 12)
    y = m(x)
    ratio = y / x
    # one gate per (sample, channel), in (0, 1)
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-5)
    assert ((ratio > 0) & (ratio < 1)).all()
    with torch.no_grad():
        m.branches[2][0].weight.mul_(3.0)  # the rate-4 branch
    assert not torch.allclose(m(x), y)


def test_se_aspp_is_built_by_name_and_rejects_bad_rates() -> None:
    assert isinstance(create_attn("se_aspp", 32, rates=(1, 2)), SEAsppModule)
    with pytest.raises(ValueError, match="rates"):
        SEAsppModule(8, rates=(0, 2))


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_mhsa_equals_torch_multihead_attention_over_the_positions(qkv_bias: bool) -> None:
    torch.manual_seed(0)
    c, heads = 32, 4
    m = MultiHeadSelfAttention2d(c, num_heads=heads, qkv_bias=qkv_bias).eval()
    ref = nn.MultiheadAttention(c, heads, bias=True, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(m.qkv.weight.flatten(1))
        ref.in_proj_bias.copy_(m.qkv.bias if qkv_bias else torch.zeros(3 * c))
        ref.out_proj.weight.copy_(m.proj.weight.flatten(1))
        ref.out_proj.bias.copy_(m.proj.bias)
    x = torch.randn(2, c, 5, 6)
    tokens = x.flatten(2).transpose(1, 2)  # (B, N, C)
    expected, _ = ref(tokens, tokens, tokens, need_weights=False)
    got = m(x).flatten(2).transpose(1, 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_mhsa_rejects_heads_that_do_not_divide_channels() -> None:
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadSelfAttention2d(30, num_heads=4)


def test_layer_norm_2d_normalises_each_position_over_channels() -> None:
    torch.manual_seed(0)
    m = LayerNorm2d(8)
    with torch.no_grad():
        m.weight.uniform_()
        m.bias.uniform_()
    x = torch.randn(2, 8, 3, 4)
    ref = nn.LayerNorm(8, eps=1e-6)
    ref.load_state_dict(m.state_dict())
    torch.testing.assert_close(m(x), ref(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def test_fsa_parameter_counts_as_written_and_with_the_projection_shortcut() -> None:
    # as written (c = 2048, r = 0.25, d = 512): down, LN, QKV (no bias) + proj, LN, MLP 4x, up
    d, c = 512, 2048
    as_written = (c * d + d) + 2 * d + 3 * d * d + (d * d + d) + 2 * d + (d * 4 * d + 4 * d + 4 * d * d + d) + (d * c + c)
    assert n_params(FastSelfAttention(c)) == as_written == 5_250_560
    assert n_params(FastSelfAttention(c, proj_shortcut=True)) == as_written + c * c == 9_444_864


def test_fsa_keeps_the_shape_and_its_shortcut_adds_the_projected_input() -> None:
    torch.manual_seed(0)
    m = FastSelfAttention(64, num_heads=2, proj_shortcut=True).eval()
    x = torch.randn(2, 64, 7, 7)
    y = m(x)
    assert y.shape == x.shape
    with torch.no_grad():
        m.up.weight.zero_()
        m.up.bias.zero_()
    torch.testing.assert_close(m(x), m.shortcut(x))
