"""ONet probe: the first three convolutions of MTCNN's ONet, pretrained and frozen, and a linear head.

Not one of the five papers' models: a *teacher* for small data (issue 8). The papers' networks
learn every filter from the training faces; on a few hundred real faces (CK+48 dev subset, 58
subjects, subject-independent folds) that is what limits them. ONet (Zhang et al., "Joint face
detection and alignment using multi-task cascaded convolutional networks", 2016) is trained on
tens of thousands of real faces (WIDER FACE, CelebA) to classify 48x48 face crops and place five
landmarks (eyes, nose, mouth corners) -- its filters already respond to the geometry of mouths,
eyes and brows that expressions change. ``facenet-pytorch`` ships its weights inside the package
(``facenet_pytorch/data/onet.pt``; nothing is downloaded).

Measured on the CK+48 dev subset (459 images; scikit-learn ``StratifiedGroupKFold(10)`` by
subject, standardised features + logistic regression, no training of the convolutions): conv4
features 86.1%, conv2 (pooled to 4x4) 89.2%, conv3 92.1% -- above every network trained from
scratch on the same folds (EAN 79.6%, DNN-CBAM 83.1%). Hence the cut after conv3.

Architecture: ONet's ``conv1 3x3 (32) - PReLU - maxpool 3/2 - conv2 3x3 (64) - PReLU - maxpool 3/2
- conv3 3x3 (64) - PReLU`` (ceil-mode pools, as in ONet), frozen; the 64 x h x w map flattened
(7x7 at 44 px, 8x8 at 48 px), batch-normalised without affine parameters (the "standardise"
of the measurement above), dropout, one linear layer. Only the head trains (about 22k
parameters at 44 px). Grey input is repeated to three channels; the expected input scale is
ONet's ``(pixel - 127.5) / 128``, which the pipeline's ``mean 0.5, std 0.5`` matches to 0.4%.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from fer_models.registry import register_model

__all__ = ["FaceProbe", "default_cfgs", "VARIANTS"]

default_cfgs: dict[str, dict[str, Any]] = {
    "onet_probe": {
        "paper": "teacher, not a paper model: MTCNN ONet conv1-3 (Zhang et al. 2016, facenet-pytorch weights), "
                 "frozen, + linear head",
        "input_size": (1, 44, 44),
        "num_classes": 7,
        "classifier": "fc",
        # ONet's weights ship inside facenet-pytorch; the entrypoint loads them (its `pretrained`, default True)
        "pretrained": {"source": "builtin", "weights": "facenet-pytorch ONet", "target": "trunk"},
    }
}

VARIANTS: dict[str, dict[str, dict[str, Any]]] = {"onet_probe": {"default": {}}}


def onet_trunk(pretrained: bool = True) -> nn.Sequential:
    """ONet's layers up to conv3's PReLU, with facenet-pytorch's weights when ``pretrained``."""
    trunk = nn.Sequential()
    trunk.add_module("conv1", nn.Conv2d(3, 32, 3))
    trunk.add_module("prelu1", nn.PReLU(32))
    trunk.add_module("pool1", nn.MaxPool2d(3, 2, ceil_mode=True))
    trunk.add_module("conv2", nn.Conv2d(32, 64, 3))
    trunk.add_module("prelu2", nn.PReLU(64))
    trunk.add_module("pool2", nn.MaxPool2d(3, 2, ceil_mode=True))
    trunk.add_module("conv3", nn.Conv2d(64, 64, 3))
    trunk.add_module("prelu3", nn.PReLU(64))
    if pretrained:
        try:
            from facenet_pytorch.models.mtcnn import ONet
        except ImportError as exc:  # fer_models alone needs only torch; this model needs the weights
            raise ImportError("onet_probe(pretrained=True) needs facenet-pytorch for ONet's weights") from exc
        onet = ONet(pretrained=True).state_dict()
        trunk.load_state_dict({k: v for k, v in onet.items() if k.split(".")[0] in dict(trunk.named_children())})
    return trunk


def onet_conv1_filters(n: int, in_chans: int) -> torch.Tensor:
    """The ``n`` largest-norm 3x3 filters of ONet's pretrained conv1, shaped ``(n, in_chans, 3, 3)``.

    For initialising another network's first 3x3 convolution from a face model (e.g. EAN's head,
    ``ean(head_init="onet")``). ONet reads RGB scaled to [-1, 1]; a grey input (``in_chans`` 1) is the
    same image in all three channels, so its filter is the sum over the colour channels.
    """
    if n > 32 or in_chans not in (1, 3):
        raise ValueError(f"ONet's conv1 has 32 filters over 3 channels: cannot give {n} over {in_chans}")
    w = onet_trunk(pretrained=True).conv1.weight.detach()
    if in_chans == 1:
        w = w.sum(dim=1, keepdim=True)
    order = w.flatten(1).norm(dim=1).argsort(descending=True)
    return w[order[:n]].clone()


class FaceProbe(nn.Module):
    """A frozen pretrained face trunk (:func:`onet_trunk`) and a trainable linear head.

    Args:
        num_classes: expression classes.
        in_chans: 1 (grey, repeated to 3) or 3.
        img_size: input side in pixels (sets the head's width).
        dropout: dropout before the linear layer.
        pretrained: load ONet's weights (False: random trunk, for tests and ablation).
        freeze: keep the trunk fixed (True) or fine-tune it too.
    """

    def __init__(self, num_classes: int = 7, in_chans: int = 1, img_size: int = 44, dropout: float = 0.5,
                 pretrained: bool = True, freeze: bool = True) -> None:
        super().__init__()
        if in_chans not in (1, 3):
            raise ValueError(f"onet_probe takes 1 or 3 input channels, got {in_chans}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.img_size = img_size
        self.trunk = onet_trunk(pretrained)
        self.freeze = freeze
        if freeze:
            self.trunk.requires_grad_(False)
        with torch.no_grad():
            width = self.trunk(torch.zeros(1, 3, img_size, img_size)).numel()
        self.norm = nn.BatchNorm1d(width, affine=False)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_chans == 1:
            x = x.expand(-1, 3, -1, -1)
        # NHWC: on CPU the trunk's ceil-mode max-pooling and 3-channel conv1 are several times faster
        # (bench/teacher_speed.py); the same numbers to float rounding, and flatten(1) keeps C, H, W order
        features = self.trunk(x.contiguous(memory_format=torch.channels_last)).flatten(1)
        if features.shape[1] != self.fc.in_features:
            raise ValueError(f"onet_probe was built for {self.img_size} px input (img_size), got "
                             f"{tuple(x.shape[-2:])}; set model_args.img_size to the recipe's input.size")
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.norm(self.forward_features(x))))


@register_model
def onet_probe(num_classes: int = 7, in_chans: int = 1, **kwargs: Any) -> FaceProbe:
    """Frozen ONet conv1-3 + linear head (a teacher for EAN on small data; see the module docstring)."""
    return FaceProbe(num_classes=num_classes, in_chans=in_chans, **kwargs)
