"""DFNet: ResNet50 + DCM (dilated multi-scale module) + FSA (fast self-attention), paper 003.

Paper: 林帅男, 张伟, 胡敏, 赵瑞, "DFNet: 融合多尺度特征与自注意力的表情识别算法" (DFNet: expression
recognition fusing multi-scale features and self-attention), 智能计算机与应用 14(6):64-70, 2024,
DOI 10.20169/j.issn.2095-2163.240609.

Layout (section 1.3: "Backbone, then DCM and FSA, finally the fully connected layer"):
torchvision ResNet50 up to ``layer4`` (``B x 2048 x 7 x 7`` at the paper's 224 px input) -> DCM
-> FSA -> global average pool -> linear. Both modules act on the 7x7x2048 map (section 1.1 "输入
7x7 的特征图", section 1.2 "batchsize x 2048 x 7 x 7").

Choices where the text is ambiguous (each reproduces the paper's Table 2 parameter counts):

* DCM (``DilatedConvMultiScale``): "1x1 conv, one 3x3 conv, two 3x3 convs and three 3x3 convs" in
  parallel, read with the next sentence ("3x3 convolutions with different dilation rates replace
  5x5 and 7x7", formula (1) ``K = k + (k-1)(r-1)``) as four single-conv branches: 1x1, 3x3 d=1,
  3x3 d=2 (covers 5x5), 3x3 d=3 (covers 7x7); each ``C -> C/4`` + BN + SiLU; concat (``C``);
  BN + SiLU; 1x1 ``C -> C`` (the text's "channel reduction" maps the concat back to ``C``) + BN +
  SiLU; "对所有数据进行整合" read as a residual add of the module input. ResNet50 + DCM =
  57,089,095 parameters = Table 2's 57.09M (stacked 3x3 branches, 2048->512 then 512->512,
  would give 64,170,055 instead).
* FSA: see ``fer_models.layers.fsa``. Written as the text describes it, FSA has 5,250,560
  parameters, and Table 2 implies about 9.44M. ``fsa_proj_shortcut=True`` (the default here) adds a
  bias-free 1x1 ``2048 -> 2048`` projection shortcut around the block. That one layer closes the gap
  (FSA 9,444,864), and it is inferred from the counts, not stated in the text.
* Head: global average pool + linear (the paper's "fully connected layer"); ``drop_rate`` 0.

Paper numbers (Table 2, 7 classes): ResNet50 23.52M / 88.40% RAF-DB / 87.61% KDEF; +DCM 57.09M /
88.82 / 88.02; +FSA 32.97M / 88.66 / 88.84; DFNet 66.53M / 89.31 / 89.05. This implementation:
23,522,375 / 57,089,095 / 32,967,239 / 66,533,959 (with ``fsa_proj_shortcut=False``: 28,772,935
and 62,339,655). Training recipe (section 2.1): 224x224, ImageNet mean/std, random erasing p=0.5,
Adam lr 1e-4, batch 32, 80 epochs, ImageNet-pretrained backbone: ``create_model("dfnet",
pretrained=True)`` fetches torchvision's ``ResNet50_Weights.IMAGENET1K_V1`` into torch's cache (the
classic ImageNet weights; the paper does not say which), ``pretrained=<path>`` loads a local
torchvision ResNet state dict into the backbone (or a whole DFNet state dict); see
:mod:`fer_models.pretrained`. ``pretrained_path=`` is the older spelling of the second.

``backbone`` (not in the paper, default ``resnet50``) swaps in another torchvision ResNet
(``resnet18``/``resnet34``: 512 output channels, DCM and FSA sized to match): a cheap stand-in for
CPU demos on small generated samples, where a 23M-parameter ResNet50 trained from scratch for a
few epochs learns nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torchvision import models as tv_models

from fer_models.layers.fsa import FastSelfAttention
from fer_models.heads import PooledLinearHead
from fer_models.registry import register_model

__all__ = ["DFNet", "DilatedConvMultiScale", "default_cfgs", "VARIANTS", "dfnet", "pretrained_cfg"]

default_cfgs: dict[str, dict[str, Any]] = {
    "dfnet": {
        "paper": "Lin, Zhang, Hu, Zhao 2024, 智能计算机与应用 14(6):64-70, "
        "doi:10.20169/j.issn.2095-2163.240609 (paper 003)",
        "input_size": (3, 224, 224),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "num_classes": 7,
        "classifier": "fc",
        # the paper's starting point: an ImageNet-trained ResNet50 backbone (section 2.1)
        "pretrained": {
            "source": "torchvision",
            "weights": "ResNet50_Weights.IMAGENET1K_V1",
            "url": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
            "file": "resnet50-0676ba61.pth",
            "target": "backbone",
        },
        # Table 2 (params rounded to 0.01M there; accuracies in %, RAF-DB / KDEF)
        "paper_params": 66_530_000,
        "paper_accuracy": {"rafdb": 89.31, "kdef": 89.05},
        "variants": {
            "no_fsa": {"paper_params": 57_090_000, "paper_accuracy": {"rafdb": 88.82, "kdef": 88.02}},
            "no_dcm": {"paper_params": 32_970_000, "paper_accuracy": {"rafdb": 88.66, "kdef": 88.84}},
            "baseline": {"paper_params": 23_520_000, "paper_accuracy": {"rafdb": 88.40, "kdef": 87.61}},
        },
    }
}

# Named variants (entrypoint kwargs): Table 2's ablation rows, and FSA exactly as the text writes it.
BACKBONES = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}  # torchvision name -> output channels

#: torchvision ImageNet weights of each backbone (resnet50: the paper's, default_cfgs' "pretrained")
BACKBONE_WEIGHTS = {"resnet18": "ResNet18_Weights.IMAGENET1K_V1", "resnet34": "ResNet34_Weights.IMAGENET1K_V1",
                    "resnet50": "ResNet50_Weights.IMAGENET1K_V1"}


def pretrained_cfg(backbone: str = "resnet50", **_: Any) -> dict[str, Any] | None:
    """The public source of the backbone's ImageNet weights for these entrypoint kwargs (the registry's
    ``pretrained_cfg``): torchvision's, keyed like ``default_cfgs["dfnet"]["pretrained"]``."""
    if backbone == "resnet50":
        return dict(default_cfgs["dfnet"]["pretrained"])
    if backbone not in BACKBONE_WEIGHTS:
        return None
    from torchvision.models import get_weight

    url = get_weight(BACKBONE_WEIGHTS[backbone]).url
    return {"source": "torchvision", "weights": BACKBONE_WEIGHTS[backbone], "url": url,
            "file": url.rsplit("/", 1)[1], "target": "backbone"}


VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "dfnet": {
        "default": {},
        "no_fsa": {"fsa": False},
        "no_dcm": {"dcm": False},
        "baseline": {"dcm": False, "fsa": False},
        "fsa_as_written": {"fsa_proj_shortcut": False},
    }
}


def _conv_bn_silu(in_ch: int, out_ch: int, kernel_size: int, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.SiLU(inplace=True),
    )


class DilatedConvMultiScale(nn.Module):
    """DCM: parallel 1x1 and dilated 3x3 branches (``C/4`` each), concat, BN+SiLU, 1x1, BN+SiLU, + input.

    Args:
        channels: input (= output) channels ``C``; divisible by the number of branches.
        dilations: dilation of each 3x3 branch (paper: 1, 2, 3 for 3x3, 5x5, 7x7 receptive fields).
    """

    def __init__(self, channels: int, dilations: Sequence[int] = (1, 2, 3)) -> None:
        super().__init__()
        n_branches = len(dilations) + 1
        if channels % n_branches:
            raise ValueError(f"channels={channels} not divisible by {n_branches} branches")
        width = channels // n_branches
        self.branches = nn.ModuleList(
            [_conv_bn_silu(channels, width, 1)] + [_conv_bn_silu(channels, width, 3, d) for d in dilations]
        )
        self.fuse_act = nn.Sequential(nn.BatchNorm2d(channels), nn.SiLU(inplace=True))
        self.proj = _conv_bn_silu(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([b(x) for b in self.branches], dim=1)
        return x + self.proj(self.fuse_act(y))


class DFNet(PooledLinearHead, nn.Module):
    """ResNet50 backbone, optional DCM and FSA on its 2048-channel output, average pool, linear head.

    Args:
        num_classes: classifier outputs.
        in_chans: input channels (3 for the paper; 1 replaces ``conv1``).
        dcm: use the DCM module.
        fsa: use the FSA module.
        fsa_proj_shortcut: FSA's 1x1 projection shortcut, which reproduces Table 2's counts (see module docstring).
        fsa_heads: attention heads in FSA.
        drop_rate: dropout before the classifier.
        pretrained_path: local torchvision state dict of ``backbone`` (its ``fc`` is ignored); the older
            spelling of ``create_model("dfnet", pretrained=path)``.
        backbone: torchvision ResNet builder name (paper: ``resnet50``; ``resnet18``/``resnet34`` for CPU demos).
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 3,
        dcm: bool = True,
        fsa: bool = True,
        fsa_proj_shortcut: bool = True,
        fsa_heads: int = 8,
        drop_rate: float = 0.0,
        pretrained_path: str | Path | None = None,
        backbone: str = "resnet50",
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone {backbone!r}: expected one of {sorted(BACKBONES)}")
        self.num_classes = num_classes
        self.num_features = BACKBONES[backbone]
        self.backbone_name = backbone
        backbone = getattr(tv_models, backbone)(weights=None)
        if in_chans != 3:
            backbone.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        backbone.avgpool = nn.Identity()
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.dcm = DilatedConvMultiScale(self.num_features) if dcm else nn.Identity()
        self.fsa = (
            FastSelfAttention(self.num_features, num_heads=fsa_heads, proj_shortcut=fsa_proj_shortcut)
            if fsa
            else nn.Identity()
        )
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)
        if pretrained_path is not None:
            self.load_backbone(pretrained_path)

    def load_backbone(self, path: str | Path) -> None:
        """Load a torchvision state dict of the backbone's architecture from ``path`` into the backbone (``fc.*`` ignored).

        With ``in_chans=1`` the RGB ``conv1`` kernels are summed over the input channels.
        """
        from fer_models.pretrained import read_state_dict

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: pretrained {self.backbone_name} state dict not found")
        self.load_backbone_state(read_state_dict(path), str(path))

    def load_backbone_state(self, state: dict[str, torch.Tensor], where: str = "state dict") -> None:
        """Copy a torchvision ResNet ``state`` (of ``backbone``'s architecture; ``fc.*`` ignored) into the
        backbone; ``where`` names it in errors. ``in_chans=1``: ``conv1`` summed over RGB."""
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        conv1 = self.backbone.conv1.weight
        w = state.get("conv1.weight")
        if w is not None and w.shape != conv1.shape:
            if w.shape[1] == 3 and conv1.shape[1] == 1:
                state["conv1.weight"] = w.sum(dim=1, keepdim=True)
            else:
                raise ValueError(f"{where}: conv1.weight {tuple(w.shape)} does not fit {tuple(conv1.shape)}")
        try:
            self.backbone.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{where}: not a torchvision {self.backbone_name} state dict: "
                             f"{' '.join(str(e).split())[:200]}") from None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x num_features x H/32 x W/32`` features after the backbone, DCM and FSA."""
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        return self.fsa(self.dcm(x))


@register_model
def dfnet(num_classes: int = 7, **kwargs: Any) -> DFNet:
    """DFNet (paper 003); ``dcm=False`` / ``fsa=False`` give the ablation rows of Table 2 (see ``VARIANTS``)."""
    return DFNet(num_classes=num_classes, **kwargs)
