"""Unit tests of the attention layers in fer_models.layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from fer_models.layers import (
    CbamModule,
    ChannelAttn,
    EcaModule,
    NonLocalAttn,
    SEModule,
    SpatialAttn,
    create_attn,
    get_attn,
)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_eca_has_three_weights_and_gates_by_1d_conv_over_pooled_channels() -> None:
    torch.manual_seed(0)
    eca = EcaModule(16)
    assert n_params(eca) == 3
    x = torch.randn(2, 16, 5, 5)
    y = eca(x)
    assert y.shape == x.shape
    w = eca.conv.weight.flatten()
    pooled = x.mean(dim=(2, 3))
    padded = nn.functional.pad(pooled, (1, 1))
    conv = w[0] * padded[:, :-2] + w[1] * padded[:, 1:-1] + w[2] * padded[:, 2:]
    torch.testing.assert_close(y, x * torch.sigmoid(conv)[:, :, None, None])


def test_eca_rejects_even_kernel() -> None:
    with pytest.raises(ValueError, match="odd"):
        EcaModule(8, kernel_size=4)


def test_channel_attn_uses_average_and_max_through_one_shared_mlp() -> None:
    torch.manual_seed(0)
    ca = ChannelAttn(32, rd_ratio=1 / 8)
    assert ca.fc1.out_channels == 4
    assert n_params(ca) == 32 * 4 + 4 + 4 * 32 + 32
    x = torch.randn(2, 32, 6, 6)
    mlp = lambda v: ca.fc2(torch.relu(ca.fc1(v)))  # noqa: E731
    expected = x * torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    torch.testing.assert_close(ca(x), expected)
    # same mean, different max -> different weights: max pooling matters
    flat = torch.zeros(1, 32, 2, 2)
    peaked = flat.clone()
    peaked[0, :, 0, 0], peaked[0, :, 0, 1] = 1.0, -1.0
    assert not torch.allclose(ca.attention(flat), ca.attention(peaked))


def test_spatial_attn_and_cbam_shapes_and_parameters() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 64, 7, 7)
    sa = SpatialAttn(7)
    assert n_params(sa) == 2 * 49 + 2  # conv 2->1 7x7 no bias + BN(1)
    assert sa(x).shape == x.shape
    cbam = CbamModule(64)
    assert n_params(cbam) == n_params(ChannelAttn(64)) + n_params(SpatialAttn(7))
    y = cbam(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, cbam.spatial(cbam.channel(x)))


def test_se_gates_channels_from_average_pool() -> None:
    torch.manual_seed(0)
    se = SEModule(32, rd_ratio=1 / 4)
    assert n_params(se) == 32 * 8 + 8 + 8 * 32 + 32
    x = torch.randn(2, 32, 4, 4)
    y = se(x)
    assert y.shape == x.shape
    assert ((y / x) > 0).all() and ((y / x) < 1).all()  # a sigmoid gate in (0, 1)


def test_non_local_is_exactly_identity_with_gamma_zero_and_learns_gamma() -> None:
    torch.manual_seed(0)
    nl = NonLocalAttn(16)
    assert nl.gamma.item() == 0.0
    x = torch.randn(2, 16, 5, 5, requires_grad=True)
    y = nl(x)
    assert torch.equal(y, x)
    (y * torch.randn_like(y)).sum().backward()
    assert nl.gamma.grad is not None and nl.gamma.grad.abs() > 0  # the residual scale is trained
    with torch.no_grad():
        nl.gamma.fill_(1.0)
    assert not torch.allclose(nl(x), x)


def test_non_local_is_global_and_permutation_equivariant_over_positions() -> None:
    torch.manual_seed(0)
    nl = NonLocalAttn(8, rd_channels=4)
    with torch.no_grad():
        nl.gamma.fill_(1.0)
    x = torch.randn(1, 8, 4, 4)
    perm = torch.randperm(16)
    y = nl(x).flatten(2)[:, :, perm]
    y_perm = nl(x.flatten(2)[:, :, perm].reshape(1, 8, 4, 4)).flatten(2)
    torch.testing.assert_close(y, y_perm)
    # a change at one corner reaches the opposite corner in one layer
    x2 = x.clone()
    x2[0, :, 0, 0] += 5.0
    assert not torch.allclose(nl(x)[0, :, 3, 3], nl(x2)[0, :, 3, 3])


@pytest.mark.parametrize(("name", "cls"), [("eca", EcaModule), ("se", SEModule), ("cbam", CbamModule),
                                           ("channel", ChannelAttn), ("non_local", NonLocalAttn)])
def test_create_attn_builds_by_name(name: str, cls: type) -> None:
    layer = create_attn(name, 32)
    assert isinstance(layer, cls)
    x = torch.randn(1, 32, 4, 4)
    assert layer(x).shape == x.shape


def test_create_attn_none_and_unknown() -> None:
    assert isinstance(create_attn(None, 8), nn.Identity)
    assert get_attn("none") is None and get_attn("") is None
    with pytest.raises(ValueError, match="unknown attention 'nope'"):
        create_attn("nope", 8)
