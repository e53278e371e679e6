"""Weight initialisation shared by the models trained from scratch (timm's ``layers.weight_init``)."""

from __future__ import annotations

import torch.nn as nn


def init_conv_bn(module: nn.Module) -> None:
    """He (fan-out, ReLU) init of every ``Conv2d`` in ``module``; BatchNorm ``weight=1``, ``bias=0``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
