"""DNN-CBAM: a lightweight VGG-like network with depthwise-separable residual blocks, one CBAM, AM-Softmax.

Paper: "A lightweight deep convolutional neural network with convolutional block attention module
for facial expression recognition" (``/work/shared/papers/001_52e932a79840ed14.txt``). Adam lr 1e-3,
batch 32, 120 epochs (FER2013) / 300 (CK+), 5-fold cross-validation. FER2013: 69.3% (DNN) ->
70.5% (+ CBAM) -> 71.5% (+ AM-Softmax, "DNN-CBAM"); CK+ 99.5%. No parameter count or FLOPs given.

What the paper fixes (Section "The proposed DNN", Figures 4 and 5): an input module of two 3x3
convolutions; a middle module of convolutional residual blocks, each two depthwise-separable
convolutions and a max-pool on the main path and a 1x1 convolution on the shortcut, with 32, 64,
128 and 256 channels; every convolution followed by BN + ReLU; one CBAM between the middle and the
output module; an output module of a 3x3 convolution and global average pooling (no fully
connected layers); AM-Softmax as the classification function.

Choices where the text is silent (the figures are not in the text):

* 1 input channel at 48x48 (FER2013 and CK+ are grey);
* input module: 3x3 convs ``in -> 32 -> 32``, stride 1 ("the first convolution block reduced to 32");
* residual block (as mini-Xception, which this design follows): main path separable conv (3x3
  depthwise + 1x1 pointwise) + BN + ReLU, separable conv + BN + ReLU, 3x3 max-pool stride 2; shortcut
  1x1 conv stride 2 + BN; the two added. 48 -> 24 -> 12 -> 6 -> 3 px;
* CBAM with reduction 16 and a 7x7 spatial kernel (CBAM's defaults);
* output module: 3x3 conv ``256 -> 256`` + BN + ReLU, global average pooling to a 256-d feature;
  then the head: :class:`~fer_models.heads.AMSoftmaxHead` (``s = 30``; training uses
  :class:`~fer_models.heads.AMSoftmaxLoss` with ``m = 0.35``, the AM-Softmax paper's values -- the
  FER paper gives none), or for the softmax ablation a linear layer trained with cross entropy.
  ``fer_models.heads.loss_for(model)`` returns the matching loss.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from fer_models.heads import AMSoftmaxHead
from fer_models.layers.cbam import CbamModule
from fer_models.layers.weight_init import init_conv_bn
from fer_models.registry import register_model

__all__ = ["DNNCBAM", "SeparableResidualBlock", "HEADS", "default_cfgs", "VARIANTS"]

HEADS = ("am_softmax", "softmax")

default_cfgs: dict[str, dict[str, Any]] = {
    "dnn_cbam": {
        "paper": "Lightweight DNN with CBAM and AM-Softmax for FER (paper 001)",
        "input_size": (1, 48, 48),
        "num_classes": 7,
        "classifier": "head",  # the head left untouched by a pretrained file of another class count
    }
}

# the paper's ablation (Table 4): DNN 69.3%, + CBAM 70.5%, + AM-Softmax 71.5% (the default)
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "dnn_cbam": {
        "default": {},
        "cbam_softmax": {"head": "softmax"},
        "dnn": {"cbam": False, "head": "softmax"},
        "no_cbam": {"cbam": False},
    }
}


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


def _separable(c_in: int, c_out: int) -> list[nn.Module]:
    """3x3 depthwise + 1x1 pointwise convolution, BN, ReLU."""
    return [nn.Conv2d(c_in, c_in, 3, 1, 1, groups=c_in, bias=False), *_conv_bn_relu(c_in, c_out, kernel=1)]


class SeparableResidualBlock(nn.Module):
    """Two separable convolutions and a stride-2 max-pool, plus a stride-2 1x1 convolution shortcut.

    Args:
        c_in: input channels.
        c_out: output channels.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_separable(c_in, c_out), *_separable(c_out, c_out), nn.MaxPool2d(3, 2, 1))
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, 2, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class DNNCBAM(nn.Module):
    """Input module, separable residual middle module, CBAM, output module, classification head.

    Args:
        num_classes: number of expression classes.
        in_chans: input channels (1: grey faces).
        cbam: insert CBAM between the middle and output modules.
        head: ``"am_softmax"`` (cosine logits ``s * cos``) or ``"softmax"`` (linear logits).
        stem_channels: channels of the input module's convolutions.
        widths: channels of the middle module's residual blocks.
        feature_dim: channels of the output module's convolution (the feature fed to the head).
        scale: AM-Softmax scale ``s``.
    """

    def __init__(self, num_classes: int = 7, in_chans: int = 1, cbam: bool = True, head: str = "am_softmax",
                 stem_channels: int = 32, widths: Sequence[int] = (32, 64, 128, 256), feature_dim: int = 256,
                 scale: float = 30.0) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
        self.num_classes = num_classes
        self.stem = nn.Sequential(*_conv_bn_relu(in_chans, stem_channels), *_conv_bn_relu(stem_channels, stem_channels))
        blocks = []
        c_in = stem_channels
        for width in widths:
            blocks.append(SeparableResidualBlock(c_in, width))
            c_in = width
        self.middle = nn.Sequential(*blocks)
        self.attn = CbamModule(c_in) if cbam else nn.Identity()
        self.output = nn.Sequential(*_conv_bn_relu(c_in, feature_dim))
        self.num_features = feature_dim
        self.head = AMSoftmaxHead(feature_dim, num_classes, scale) if head == "am_softmax" else nn.Linear(
            feature_dim, num_classes)
        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map after the output module's convolution, ``(B, feature_dim, H/16, W/16)``."""
        return self.output(self.attn(self.middle(self.stem(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling, then the head; ``pre_logits`` returns the pooled feature."""
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def dnn_cbam(num_classes: int = 7, in_chans: int = 1, cbam: bool = True, head: str = "am_softmax",
             **kwargs: Any) -> DNNCBAM:
    """DNN-CBAM (paper 001); ``cbam=False`` and ``head="softmax"`` give the paper's ablations."""
    return DNNCBAM(num_classes=num_classes, in_chans=in_chans, cbam=cbam, head=head, **kwargs)
