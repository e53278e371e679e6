"""EAN: the Efficient Attention Network of Kong et al. (paper 004).

Paper: Kong, Zhang, Zhang, Ni, Han, "Real-time facial expression recognition based on iterative
transfer learning and efficient attention network", IET Image Processing 2022,
https://doi.org/10.1049/ipr2.12441 (``/work/shared/papers/004_ea71c88f613eb5d3.txt``).

Architecture (Section 3.1, Figure 3, Table 1): a 3x3 head convolution, six MobileNetV2-style
inverted residual blocks with ECA local channel attention ("EAIRB"), and a 3x3 tail convolution to
the classes followed by global average pooling. Config ``[c_head, c1(e1) ... c6(e6), c_tail]``;
EAN is ``[16, 8(3), 16(6), 16(6), 32(6), 32(6), 64(3), 7]``, stride 2 at blocks 1, 2, 4 and 6,
shortcuts at blocks 3 and 5 (the only blocks whose input and output shapes agree), BN + ReLU.

Choices where the text is ambiguous -- the reading that reproduces Table 6 and five of Table 1's
seven rows exactly, parameters and FLOPs:

* input: 3 channels, 44x44 (the paper's crop of 48x48 faces; RAF-DB is RGB, grey FER2013 images
  are replicated to 3 channels);
* head: 3x3 conv stride 1, no bias, BN, ReLU;
* block: 1x1 expansion to ``hidden = c_in * e`` (kept even when ``e == 1``, unlike MobileNetV2:
  only then does ``model_d`` reproduce), BN, ReLU; 3x3 depthwise conv (stride 1 or 2), BN, ReLU;
  1x1 linear projection, BN; ECA (1D conv, k = 3, no bias: exactly 3 parameters, 18 in all, Table 6's 43,840 - 43,822); then the shortcut
  add where there is one. No convolution has a bias;
* tail: 3x3 conv ``c6 -> num_classes`` (stride 1, padding 1) + BN, no ReLU, then global average
  pooling gives the logits (no fully connected layer).

Paper's numbers: 43,840 parameters (43,822 without ECA), 5.054 MFLOPs at 44x44 (convention: conv
multiply-adds + 2 x BN output elements, ECA's 1-D convolutions not counted; conv MACs alone
4,567,536; ``pipeline.evaluation.complexity`` convention ``"paper"``), 1.985 ms/frame ONNX CPU, memory
3.902 MB; FER2013 69.74% -> 70.63% distilled, RAF-DB 82.56% -> 85.30% distilled (alpha 0.5, T 5).
Table 1 rows are the named configs ``model_a`` ... ``model_f`` (pass ``config="model_c"``). This
reading gives, with ECA (paper's Table 1 in brackets; parameters rounded to 1e-3 M there):
``ean`` 43,840 / 5.054 MFLOPs (0.044 / 5.054), ``model_a`` 76,608 / 20.892 (0.077 / 20.892),
``model_c`` 68,752 / 9.446 (0.069 / 9.446), ``model_d`` 53,280 / 11.723 (0.053 / 11.723),
``model_f`` 52,024 / 5.126 (0.052 / 5.126): exact. Two rows do not reproduce under any reading we
tried (hidden width from c_in or c_out, expansion skipped at e = 1 or not, other stride patterns):
``model_e`` 52,728 / 5.703 (0.053 / 11.157: parameters agree, FLOPs do not) and ``model_b``
76,528 / 12.909 (0.069 / 24.834); we take them as typos in the table and build them as written.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from fer_models.layers.eca import EcaModule
from fer_models.layers.weight_init import init_conv_bn
from fer_models.pretrained import shipped_cfg
from fer_models.registry import register_model

__all__ = ["EAN", "InvertedResidual", "EAN_CONFIGS", "default_cfgs", "VARIANTS"]

# Table 1: (c_head, ((c1, e1), ... (c6, e6))); c_tail is the number of classes.
EAN_CONFIGS: dict[str, tuple[int, tuple[tuple[int, int], ...]]] = {
    "ean": (16, ((8, 3), (16, 6), (16, 6), (32, 6), (32, 6), (64, 3))),
    "model_a": (32, ((16, 6), (24, 6), (24, 6), (32, 6), (32, 6), (64, 6))),
    "model_b": (32, ((16, 3), (32, 3), (32, 3), (64, 3), (64, 3), (128, 1))),
    "model_c": (16, ((16, 6), (24, 6), (24, 6), (32, 6), (32, 6), (64, 6))),
    "model_d": (32, ((16, 3), (24, 3), (24, 3), (48, 3), (48, 3), (128, 1))),
    "model_e": (16, ((8, 3), (24, 6), (24, 6), (48, 3), (48, 3), (128, 1))),
    "model_f": (16, ((8, 3), (24, 3), (24, 3), (48, 3), (48, 3), (64, 3))),
}
# Table 1 (rounded to 1e-3 M there; EAN's own count from Table 6) and FLOPs (M), paper convention.
_PAPER_PARAMS = {"ean": 43_840, "model_a": 77_000, "model_b": 69_000, "model_c": 69_000,
                 "model_d": 53_000, "model_e": 53_000, "model_f": 52_000}
_PAPER_MFLOPS = {"ean": 5.054, "model_a": 20.892, "model_b": 24.834, "model_c": 9.446,
                 "model_d": 11.723, "model_e": 11.157, "model_f": 5.126}
STRIDES = (2, 2, 1, 2, 1, 2)  # stride 2 at blocks 1, 2, 4, 6 (Section 3.1)

default_cfgs: dict[str, dict[str, Any]] = {
    "ean": {
        "paper": "Kong et al. 2022, IET Image Processing, doi:10.1049/ipr2.12441 (paper 004)",
        "input_size": (3, 44, 44),
        "num_classes": 7,
        "classifier": "tail",  # the head left untouched by a pretrained file of another class count
        "paper_params": 43_840,
        "paper_flops": 5.054e6,
        "flops_convention": "paper",
        "variants": {
            "no_attention": {"paper_params": 43_822},
            **{name: {"paper_params": _PAPER_PARAMS[name], "paper_flops": _PAPER_MFLOPS[name] * 1e6}
               for name in EAN_CONFIGS if name != "ean"},
        },
        # the FER2013-trained EAN shipped in fer_models/weights/ (ean.pt + ean.json: sha256, classes,
        # mean/std, input size, provenance): create_model("ean", pretrained=True). Trained from scratch
        # on FER2013's 28,709 Training faces by bench/fer2013.py (paper 004's recipe): PublicTest 63.17%
        # ten-crop, 60.64% centre crop (paper, Table 2: 69.74% before and 70.63% after distillation)
        "pretrained": shipped_cfg("ean"),
    }
}

# Named variants (keyword arguments of the entrypoint), listed by ``fer-pipeline models``.
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "ean": {
        "default": {},
        "no_attention": {"attention": False},
        **{name: {"config": name} for name in EAN_CONFIGS if name != "ean"},
    }
}


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual block with optional ECA after the projection ("EAIRB").

    Args:
        c_in: input channels.
        c_out: output channels.
        stride: stride of the depthwise convolution.
        expansion: hidden width is ``c_in * expansion`` (the 1x1 expansion exists even for 1).
        attention: add ECA (k = 3) after the projection BN.
        shortcut: add the input to the output (requires ``stride == 1`` and ``c_in == c_out``).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int, attention: bool, shortcut: bool) -> None:
        super().__init__()
        if shortcut and (stride != 1 or c_in != c_out):
            raise ValueError(f"shortcut needs stride 1 and c_in == c_out, got {stride=}, {c_in=}, {c_out=}")
        hidden = c_in * expansion
        self.expand = _conv_bn(c_in, hidden, 1)
        self.depthwise = _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        self.project = _conv_bn(hidden, c_out, 1, act=False)
        self.attn = EcaModule(c_out, kernel_size=3) if attention else nn.Identity()
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(self.project(self.depthwise(self.expand(x))))
        return x + y if self.shortcut else y


class EAN(nn.Module):
    """Efficient Attention Network (see the module docstring for the exact reading of the paper).

    Args:
        num_classes: number of expression classes (``c_tail``; 7 in the paper).
        in_chans: input channels (3 in the paper).
        head_channels: ``c_head``.
        blocks: ``((c1, e1), ... (c6, e6))``.
        attention: ECA in every block (False: Table 6's ablation, 18 parameters fewer).
        strides: stride of each block.
        shortcut_blocks: 1-based indices of the blocks with a shortcut.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 3,
        head_channels: int = 16,
        blocks: Sequence[tuple[int, int]] = EAN_CONFIGS["ean"][1],
        attention: bool = True,
        strides: Sequence[int] = STRIDES,
        shortcut_blocks: Sequence[int] = (3, 5),
    ) -> None:
        super().__init__()
        if len(strides) != len(blocks):
            raise ValueError(f"{len(blocks)} blocks but {len(strides)} strides")
        self.num_classes = num_classes
        self.head = _conv_bn(in_chans, head_channels, 3)
        layers = []
        c_in = head_channels
        for i, ((c_out, e), s) in enumerate(zip(blocks, strides), start=1):
            layers.append(InvertedResidual(c_in, c_out, s, e, attention, shortcut=i in shortcut_blocks))
            c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.num_features = c_in
        self.tail = _conv_bn(c_in, num_classes, 3, act=False)
        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of the last block, ``(B, c6, H/16, W/16)``."""
        return self.blocks(self.head(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tail convolution + BN, then global average pooling; ``pre_logits`` returns the pooled features."""
        if pre_logits:
            return x.mean(dim=(2, 3))
        return self.tail(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


HEAD_INITS = (None, "onet")


@register_model
def ean(num_classes: int = 7, in_chans: int = 3, attention: bool = True, config: str = "ean",
        head_init: str | None = None, freeze_head: bool = False, **kwargs: Any) -> EAN:
    """EAN (paper 004); ``config`` picks a Table 1 row (``ean``, ``model_a`` ... ``model_f``).

    ``head_init="onet"`` (not in the paper, which trains from scratch): the head convolution starts
    from the largest-norm filters of MTCNN ONet's pretrained conv1 (``fer_models.onet_probe``; needs
    facenet-pytorch), a face model's first layer for small data. Same architecture and parameters.
    ``freeze_head=True`` keeps the head convolution's weights fixed (its batch norm still trains).
    On the CK+48 dev subset (subject-independent 10-fold, onet_probe as teacher), one seed each:
    ONet head kept fixed 89.01 ± 6.61, ONet head trained 86.66 ± 6.87, default initialisation
    84.70 ± 7.89. The fixed head over seeds 0, 1, 2: 88.55 on average, with 2.5 points of spread
    between seeds, as much as these differences (README "Results on real data").
    """
    if config not in EAN_CONFIGS:
        raise ValueError(f"unknown EAN config {config!r}; known: {', '.join(EAN_CONFIGS)}")
    if head_init not in HEAD_INITS:
        raise ValueError(f"unknown EAN head_init {head_init!r}; known: {', '.join(map(str, HEAD_INITS))}")
    head_channels, blocks = EAN_CONFIGS[config]
    model = EAN(num_classes=num_classes, in_chans=in_chans, head_channels=head_channels, blocks=blocks,
                attention=attention, **kwargs)
    if head_init == "onet":
        from fer_models.onet_probe import onet_conv1_filters

        with torch.no_grad():
            model.head[0].weight.copy_(onet_conv1_filters(head_channels, in_chans))
    if freeze_head:
        model.head[0].weight.requires_grad_(False)
    return model
