"""ERFNet-att: an ERFNet encoder with group convolution and SE-ASPP attention, for classification (paper 002).

Paper: "Facial expression recognition method combined with the attention mechanism" (improved
ERFNet + group convolution + SE attention with an ASPP squeeze; ``/work/shared/papers/
002_740f7717ae6ede0e.txt``). Its ERFNet: Romera et al., "ERFNet: Efficient Residual Factorized
ConvNet for Real-Time Semantic Segmentation", IEEE T-ITS 2018.

Layout (Table 1, modules 1-16 = the encoder), channels as the paper's table gives them:

====  =====================================  ========  =========================
 #    module                                 channels  map at the paper's 384 px
====  =====================================  ========  =========================
 1    downsampler                            16        192
 2    downsampler                            64        96
 3-7  ARB x 5                                64        96
 8    downsampler                            256       48
 9-12 non-bt-1D, dilation 2, 4, 8, 16        256       48
13-16 non-bt-1D, dilation 2, 4, 8, 16        128       48
====  =====================================  ========  =========================

Choices where the text is ambiguous (the paper gives no parameter count, so none of them can be
checked against a number of the paper):

* Classification instead of segmentation: the decoder (modules 17-23: two deconvolution upsamplers,
  non-bt-1D / ARB blocks, a full-resolution "Output C" map) restores resolution for a saliency
  map, which expression classification does not need. It is replaced by global average pooling of
  module 16's 128-channel map, dropout and one linear layer to the classes (the "Output C" becomes
  C logits). Table 1's feature-map sizes are ERFNet's Cityscapes sizes (1024x512 input) copied
  unchanged; the paper trains at 384x384 (section 4.1), the default ``img_size`` here. The network
  is fully convolutional, so any ``img_size`` divisible by 8 works (48 for FER2013's faces).
* Blocks: ERFNet's downsampler (3x3 stride-2 conv to ``out - in`` channels concatenated with 2x2
  max-pooling, BN, ReLU); "ARB" = ERFNet's non-bottleneck-1D at dilation 1 (the blocks Table 1
  renames, modules 3-7 of ERFNet); non-bt-1D(d) = 3x1, ReLU, 1x3, BN, ReLU, 3x1 dilated d, ReLU, 1x3
  dilated d, BN, dropout, attention, + input, ReLU. Dropout 0.03 in stage 2 and 0.3 in stage 3
  (ERFNet's values). Module 13 changes 256 -> 128 channels (Table 1), so its first 3x1 conv maps
  256 -> 128 and its shortcut is a 1x1 conv + BN.
* Group convolution (section 3.1): every 3x1 / 1x3 conv of the residual blocks has ``groups``
  groups (default 4; the paper gives no number), with a channel shuffle (ShuffleNet) between the
  two conv pairs so that the groups exchange information; the downsamplers stay dense.
* Attention (section 3.3): SE whose squeeze is ASPP (``fer_models.layers.se_aspp``, r = 16), on
  the residual branch of every ARB and non-bt-1D block before the addition (SE-ResNet's place).
  ASPP rates follow the map size: ``round(f/8), round(f/4), round(3f/8)`` (at least 1) for an
  ``f x f`` map, i.e. DeepLabv3's 6, 12, 18 on the 48x48 map of the paper's 384 px input.
* Input: 3 channels (ERFNet's RGB input; grey images replicated).

Paper's numbers: precision CK+ 88.81%, JAFFE 82.16%, FER2013 79.33% (average recall 78.15%); SGD
momentum 0.99, weight decay 1e-4, lr 8e-3, batch 14, 384x384 input. The paper reports no parameter
count; this implementation has, with 7 classes, 1,347,767 parameters (default), 1,224,323 without
attention, 1,269,815 with SE's plain average-pool squeeze, 4,518,071 without group convolution and
4,394,627 as a plain ERFNet encoder (neither).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from fer_models.layers.create_attn import create_attn
from fer_models.heads import PooledLinearHead
from fer_models.registry import register_model

__all__ = ["ERFNetAtt", "Downsampler", "NonBottleneck1D", "default_cfgs", "VARIANTS", "erfnet_att"]

default_cfgs: dict[str, dict[str, Any]] = {
    "erfnet_att": {
        "paper": "ERFNet + group convolution + SE-ASPP attention for FER (paper 002)",
        "input_size": (3, 384, 384),
        "num_classes": 7,
        "classifier": "fc",  # the head left untouched by a pretrained file of another class count
        "paper_precision": {"ckplus": 88.81, "jaffe": 82.16, "fer2013": 79.33},
    }
}

# Named variants (entrypoint kwargs). The paper has no ablation table; these switch off its three
# contributions one at a time, and swap the ASPP squeeze for SE's plain average pool.
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "erfnet_att": {
        "default": {},
        "no_attention": {"attn_layer": None},
        "no_group": {"groups": 1},
        "plain_erfnet": {"attn_layer": None, "groups": 1},
        "se_gap": {"attn_layer": "se"},
    }
}

# (kind, out_channels, dilation): Table 1, modules 1-16.
ENCODER: tuple[tuple[str, int, int], ...] = (
    ("down", 16, 0),
    ("down", 64, 0),
    *(("block", 64, 1),) * 5,
    ("down", 256, 0),
    *(("block", 256, d) for d in (2, 4, 8, 16)),
    *(("block", 128, d) for d in (2, 4, 8, 16)),
)


def aspp_rates(size: int) -> tuple[int, int, int]:
    """ASPP rates for an ``size x size`` map: DeepLabv3's 6, 12, 18 scaled from a 48x48 map."""
    return tuple(max(1, round(size * k)) for k in (1 / 8, 1 / 4, 3 / 8))  # type: ignore[return-value]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet), so grouped convs mix across groups."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class Downsampler(nn.Module):
    """ERFNet downsampler: ``relu(bn(concat(conv3x3_s2(x) -> out - in, maxpool2x2(x))))``."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        if out_ch <= in_ch:
            raise ValueError(f"downsampler needs out_ch > in_ch, got {in_ch} -> {out_ch}")
        self.conv = nn.Conv2d(in_ch, out_ch - in_ch, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(out_ch, eps=1e-3)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class NonBottleneck1D(nn.Module):
    """ERFNet non-bottleneck-1D block with grouped 1D convs, channel shuffle and attention.

    Args:
        in_ch: input channels.
        out_ch: output channels (a 1x1 conv + BN shortcut when it differs from ``in_ch``).
        dilation: dilation of the second 3x1 / 1x3 pair (1: the paper's ARB).
        groups: groups of every 1D conv; must divide ``in_ch`` and ``out_ch``.
        drop_rate: ``Dropout2d`` probability before the attention.
        attn_layer: attention name for ``create_attn`` (``None``: no attention).
        attn_kwargs: keyword arguments of the attention layer.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        dilation: int = 1,
        groups: int = 1,
        drop_rate: float = 0.0,
        attn_layer: str | None = "se_aspp",
        attn_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if in_ch % groups or out_ch % groups:
            raise ValueError(f"groups={groups} must divide in_ch={in_ch} and out_ch={out_ch}")
        d = dilation
        self.groups = groups
        self.conv3x1_1 = nn.Conv2d(in_ch, out_ch, (3, 1), padding=(1, 0), groups=groups)
        self.conv1x3_1 = nn.Conv2d(out_ch, out_ch, (1, 3), padding=(0, 1), groups=groups)
        self.bn1 = nn.BatchNorm2d(out_ch, eps=1e-3)
        self.conv3x1_2 = nn.Conv2d(out_ch, out_ch, (3, 1), padding=(d, 0), dilation=(d, 1), groups=groups)
        self.conv1x3_2 = nn.Conv2d(out_ch, out_ch, (1, 3), padding=(0, d), dilation=(1, d), groups=groups)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=1e-3)
        self.act = nn.ReLU()
        self.drop = nn.Dropout2d(drop_rate) if drop_rate > 0 else nn.Identity()
        self.attn = create_attn(attn_layer, out_ch, **(attn_kwargs or {}))
        self.shortcut = (
            nn.Identity()
            if in_ch == out_ch
            else nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch, eps=1e-3))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv3x1_1(x))
        y = self.act(self.bn1(self.conv1x3_1(y)))
        if self.groups > 1:
            y = channel_shuffle(y, self.groups)
        y = self.act(self.conv3x1_2(y))
        y = self.bn2(self.conv1x3_2(y))
        y = self.attn(self.drop(y))
        return self.act(y + self.shortcut(x))


class ERFNetAtt(PooledLinearHead, nn.Module):
    """ERFNet encoder (Table 1, modules 1-16) with group convs and attention, plus a pooled linear head.

    Args:
        num_classes: classifier outputs.
        in_chans: input channels.
        img_size: input side the model is built for (sets the ASPP rates; must be divisible by 8).
        groups: groups of the residual blocks' 1D convs (1: dense, ERFNet's).
        attn_layer: attention in every residual block, a ``create_attn`` name (``"se_aspp"``, ``"se"``,
            ``"eca"``, ...) or ``None``.
        rd_ratio: reduction ``1/r`` of ``"se"`` / ``"se_aspp"`` (other layers keep their defaults).
        drop_rate: dropout before the classifier.
        block_drop_rates: ``Dropout2d`` in the blocks of stage 2 (64 ch) and stage 3 (ERFNet: 0.03, 0.3).
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 3,
        img_size: int = 384,
        groups: int = 4,
        attn_layer: str | None = "se_aspp",
        rd_ratio: float = 1.0 / 16,
        drop_rate: float = 0.0,
        block_drop_rates: tuple[float, float] = (0.03, 0.3),
    ) -> None:
        super().__init__()
        if img_size % 8:
            raise ValueError(f"img_size={img_size} must be divisible by 8 (three downsamplers)")
        self.num_classes = num_classes
        self.img_size = img_size
        layers: list[nn.Module] = []
        ch, size, n_down = in_chans, img_size, 0
        for kind, out_ch, dilation in ENCODER:
            if kind == "down":
                layers.append(Downsampler(ch, out_ch))
                size, n_down = size // 2, n_down + 1
            else:
                attn_kwargs: dict[str, Any] = {}
                if attn_layer in ("se", "se_aspp"):
                    attn_kwargs["rd_ratio"] = rd_ratio
                if attn_layer == "se_aspp":
                    attn_kwargs["rates"] = aspp_rates(size)
                drop = block_drop_rates[0] if n_down == 2 else block_drop_rates[1]
                layers.append(NonBottleneck1D(ch, out_ch, dilation, groups, drop, attn_layer, attn_kwargs))
            ch = out_ch
        self.encoder = nn.Sequential(*layers)
        self.num_features = ch
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(ch, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output, ``(B, 128, H/8, W/8)``."""
        return self.encoder(x)


@register_model
def erfnet_att(num_classes: int = 7, **kwargs: Any) -> ERFNetAtt:
    """ERFNet-att (paper 002); ``attn_layer=None`` / ``groups=1`` switch its contributions off (``VARIANTS``)."""
    return ERFNetAtt(num_classes=num_classes, **kwargs)
