"""ERFNet-att (paper 002): Table 1 encoder layout, group convs, SE-ASPP attention, variants, export."""

from __future__ import annotations


import pytest
import torch
from zoo_checks import build

from fer_models.erfnet_att import Downsampler, ERFNetAtt, NonBottleneck1D, aspp_rates, channel_shuffle
from fer_models.layers import SEAsppModule, SEModule
from fer_models.registry import model_default_cfg, model_variants

# Table 1, modules 1-16: (kind, output channels, dilation)
TABLE_1 = [("down", 16, 0), ("down", 64, 0)] + [("block", 64, 1)] * 5 + [("down", 256, 0)] + [
    ("block", c, d) for c in (256, 128) for d in (2, 4, 8, 16)
]


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def expected_params(groups: int, attn: str | None, num_classes: int = 7, in_chans: int = 3) -> int:
    """Parameter count written out from the layout, independently of the model code."""
    total, c_in = 0, in_chans
    for kind, c, _ in TABLE_1:
        if kind == "down":
            total += (c - c_in) * c_in * 9 + (c - c_in) + 2 * c  # conv3x3 s2 with bias, BN
        else:
            total += c * (c_in // groups) * 3 + c  # 3x1 (in -> out)
            total += 3 * (c * (c // groups) * 3 + c)  # 1x3, 3x1 dilated, 1x3 dilated
            total += 2 * 2 * c  # two BNs
            if c_in != c:
                total += c_in * c + 2 * c  # 1x1 shortcut + BN
            h = round(c / 16)
            if attn in ("se", "se_aspp"):
                total += (c * h + h) + (h * c + c)
            if attn == "se_aspp":
                total += c + 3 * 9 * c + 4 * 2 * c + 5 * c + c  # depthwise branches, BNs, fusion
        c_in = c
    return total + c_in * num_classes + num_classes


@pytest.mark.parametrize(
    "variant, groups, attn",
    [("default", 4, "se_aspp"), ("no_attention", 4, None), ("no_group", 1, "se_aspp"),
     ("plain_erfnet", 1, None), ("se_gap", 4, "se")],
)
def test_parameter_counts_follow_the_layout(variant: str, groups: int, attn: str | None) -> None:
    model = ERFNetAtt(**model_variants("erfnet_att")[variant])
    assert n_params(model) == expected_params(groups, attn)


def test_group_convolution_and_attention_change_the_size_as_claimed() -> None:
    counts = {v: n_params(ERFNetAtt(**kw)) for v, kw in model_variants("erfnet_att").items()}
    assert counts == {"default": 1_347_767, "no_attention": 1_224_323, "no_group": 4_518_071,
                      "plain_erfnet": 4_394_627, "se_gap": 1_269_815}
    assert counts["no_group"] > 3 * counts["default"]  # section 3.1: groups cut the parameters


def test_encoder_follows_table_1() -> None:
    model = ERFNetAtt(img_size=384)
    modules = list(model.encoder)
    assert len(modules) == 16
    for m, (kind, c, d) in zip(modules, TABLE_1):
        if kind == "down":
            assert isinstance(m, Downsampler) and m.bn.num_features == c
        else:
            assert isinstance(m, NonBottleneck1D) and m.bn2.num_features == c
            assert m.conv3x1_2.dilation == (d, 1) and m.conv1x3_2.dilation == (1, d)
            assert m.conv3x1_1.groups == 4 and isinstance(m.attn, SEAsppModule)
    # three downsamplers: 384 -> 48, 128 channels out; ASPP rates follow the map size
    with torch.no_grad():
        assert model.eval().forward_features(torch.zeros(1, 3, 384, 384)).shape == (1, 128, 48, 48)
    assert modules[2].attn.rates == (12, 24, 36)  # stage 2, 96x96 map
    assert modules[8].attn.rates == (6, 12, 18)  # stage 3, 48x48 map: DeepLabv3's rates
    assert aspp_rates(6) == (1, 2, 2)


def test_variants_switch_attention_and_groups() -> None:
    no_attn = build("erfnet_att", **model_variants("erfnet_att")["no_attention"])
    assert all(isinstance(b.attn, torch.nn.Identity) for b in no_attn.encoder if isinstance(b, NonBottleneck1D))
    se = build("erfnet_att", **model_variants("erfnet_att")["se_gap"])
    assert all(isinstance(b.attn, SEModule) for b in se.encoder if isinstance(b, NonBottleneck1D))
    dense = build("erfnet_att", **model_variants("erfnet_att")["no_group"])
    assert all(b.conv1x3_2.groups == 1 for b in dense.encoder if isinstance(b, NonBottleneck1D))


def test_channel_shuffle_interleaves_the_groups() -> None:
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_input_size_is_a_parameter() -> None:
    assert model_default_cfg("erfnet_att")["input_size"] == (3, 384, 384)
    small = build("erfnet_att", img_size=48, in_chans=1).eval()
    with torch.no_grad():
        assert small(torch.randn(2, 1, 48, 48)).shape == (2, 7)
    with pytest.raises(ValueError, match="divisible by 8"):
        ERFNetAtt(img_size=50)
