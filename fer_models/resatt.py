"""ResAttNet: a residual network with attention residual modules (self-attention + channel attention).

Paper: "facial expression recognition model based on the global operation idea": a residual network
with a non-local self-attention module and a CBAM-style channel attention module fused inside the
residual modules (``/work/shared/papers/000_0d6f94db9c2bd84e.txt``). TensorFlow, Adam lr 1e-4,
50 epochs, batch 64, 48x48 input; CK+ 97.89% (981 images, 7 classes, 7:2:1 split), FER2013 74.15%.
The paper gives no parameter count or FLOPs and no layer table.

What the paper fixes:

* self-attention ``Ma`` (Section 3.3): ``theta, phi, g`` 1x1 convolutions to ``Cl < C`` channels,
  softmax over all positions, a 1x1 convolution back to ``C``, output ``gamma * o + x`` with
  ``gamma`` initialised to 0 -- :class:`~fer_models.layers.non_local.NonLocalAttn`;
* channel attention ``Mc`` (Section 3.4): average- and max-pooled descriptors through a shared
  one-hidden-layer MLP ``C -> C/r -> C``, summed, sigmoid --
  :class:`~fer_models.layers.channel_attn.ChannelAttn`;
* the attention sits in the residual branch of a residual module (Section 3.6, Figure 8); the
  first part of the network downsamples, the last is a fully connected classifier (Figure 1);
* five attention settings plus the plain baseline are compared (Table 1); "channel then self" is
  chosen (Section 4.2.2).

Choices where the text is silent or self-contradictory (its Sections 3.5.1 and 3.5.2 describe the
opposite orders from their headings, and its formulas are lost):

* fusions, ``F`` the residual branch's output: ``self``: ``Ma(F)``; ``channel``: ``Mc(F) * F``;
  ``self_then_channel``: ``G = Ma(F)``, ``Mc(G) * G``; ``channel_then_self``: ``G = Mc(F) * F``,
  ``Ma(G)``; ``parallel``: ``Ma(F) + Mc(F) * F`` (element-wise sum of the two attended maps);
* ``r = 16`` for ``Mc`` (CBAM's default), ``Cl = C / 8`` for ``Ma`` (SAGAN's);
* 1 input channel (FER2013 and CK+ are grey) at 48x48; a 3x3 stem convolution to 32 channels, then
  three stages of 64, 128, 256 channels at 24, 12, 6 px, each a downsampling basic residual block
  (stride 2, 1x1 projection shortcut) followed by one attention residual module (two 3x3 convs +
  BN, attention, identity shortcut, ReLU); global average pooling, dropout, a linear classifier.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from fer_models.layers.channel_attn import ChannelAttn
from fer_models.layers.non_local import NonLocalAttn
from fer_models.layers.weight_init import init_conv_bn
from fer_models.registry import register_model

__all__ = ["ResAttNet", "AttentionFusion", "AttentionResidualBlock", "FUSIONS", "default_cfgs", "VARIANTS"]

FUSIONS = ("none", "self", "channel", "self_then_channel", "channel_then_self", "parallel")

default_cfgs: dict[str, dict[str, Any]] = {
    "resatt": {
        "paper": "Residual attention network for FER, self- + channel attention (paper 000)",
        "input_size": (1, 48, 48),
        "num_classes": 7,
        "classifier": "fc",  # the head left untouched by a pretrained file of another class count
    }
}

# Table 1's ablation: the baseline, each attention alone, the three fusions (default: channel_then_self)
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "resatt": {"default": {}, **{f: {"attention": f} for f in FUSIONS if f != "channel_then_self"}}
}


class AttentionFusion(nn.Module):
    """Self-attention ``Ma`` and channel attention ``Mc`` combined as ``mode`` (see the module docstring).

    Args:
        channels: channels of the feature map.
        mode: one of :data:`FUSIONS`.
        channel_rd_ratio: ``1/r`` of the channel attention's MLP.
        self_rd_ratio: ``Cl / C`` of the self-attention's embeddings.
    """

    def __init__(self, channels: int, mode: str = "channel_then_self", channel_rd_ratio: float = 1 / 16,
                 self_rd_ratio: float = 1 / 8) -> None:
        super().__init__()
        if mode not in FUSIONS:
            raise ValueError(f"unknown attention fusion {mode!r}; known: {', '.join(FUSIONS)}")
        self.mode = mode
        uses_self = mode != "none" and mode != "channel"
        uses_channel = mode != "none" and mode != "self"
        self.self_attn = NonLocalAttn(channels, rd_ratio=self_rd_ratio) if uses_self else None
        self.channel_attn = ChannelAttn(channels, rd_ratio=channel_rd_ratio) if uses_channel else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return x
        if self.mode == "self":
            return self.self_attn(x)
        if self.mode == "channel":
            return self.channel_attn(x)
        if self.mode == "self_then_channel":
            return self.channel_attn(self.self_attn(x))
        if self.mode == "channel_then_self":
            return self.self_attn(self.channel_attn(x))
        return self.self_attn(x) + self.channel_attn(x)  # parallel


def _conv3x3_bn(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)]


class AttentionResidualBlock(nn.Module):
    """Basic residual block ``relu(shortcut(x) + attn(bn(conv(relu(bn(conv(x)))))))`` (Figure 8).

    Args:
        c_in: input channels.
        c_out: output channels.
        stride: stride of the first convolution (2 downsamples; the shortcut is then a 1x1 conv + BN).
        attention: fusion mode of :class:`AttentionFusion` (``"none"``: a plain residual block).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, attention: str = "none") -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv3x3_bn(c_in, c_out, stride), nn.ReLU(inplace=True), *_conv3x3_bn(c_out, c_out))
        self.attn = AttentionFusion(c_out, attention)
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        else:
            self.shortcut = nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shortcut(x) + self.attn(self.body(x)))


class ResAttNet(nn.Module):
    """Residual network whose stages end in attention residual modules.

    Args:
        num_classes: number of expression classes.
        in_chans: input channels (1: grey faces).
        attention: fusion mode of the attention residual modules, one of :data:`FUSIONS`.
        stem_channels: channels of the 3x3 stem convolution.
        widths: channels of each stage; each stage halves the resolution.
        drop_rate: dropout before the classifier.
    """

    def __init__(self, num_classes: int = 7, in_chans: int = 1, attention: str = "channel_then_self",
                 stem_channels: int = 32, widths: Sequence[int] = (64, 128, 256), drop_rate: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Sequential(*_conv3x3_bn(in_chans, stem_channels), nn.ReLU(inplace=True))
        stages = []
        c_in = stem_channels
        for width in widths:
            stages.append(nn.Sequential(AttentionResidualBlock(c_in, width, stride=2),
                                        AttentionResidualBlock(width, width, attention=attention)))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.num_features = c_in
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(c_in, num_classes)
        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of the last stage, ``(B, widths[-1], H/8, W/8)``."""
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling, dropout and the classifier; ``pre_logits`` stops before dropout."""
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(self.drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def resatt(num_classes: int = 7, in_chans: int = 1, attention: str = "channel_then_self", **kwargs: Any) -> ResAttNet:
    """ResAttNet (paper 000); ``attention`` is one of :data:`FUSIONS` (default: the paper's choice)."""
    return ResAttNet(num_classes=num_classes, in_chans=in_chans, attention=attention, **kwargs)
