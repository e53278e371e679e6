"""SE-ASPP: squeeze-and-excitation whose squeeze is an atrous spatial pyramid instead of one average pool.

Papers: Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018, https://arxiv.org/abs/1709.01507;
Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation" (DeepLabv3, ASPP),
https://arxiv.org/abs/1706.05587. Paper 002 (ERFNet with attention, section 3.3) keeps SE's
excitation ``s = sigmoid(W2 relu(W1 z))``, ``W1 in R^{C/r x C}``, and replaces the squeeze
``z = GAP(L)`` by ASPP, "an effective mechanism to control the size of the receptive field".

The paper gives no ASPP details, so this layer chooses (and documents) them:

* branches as in DeepLabv3: a 1x1 branch, one 3x3 atrous branch per rate (DeepLabv3: 6, 12, 18)
  and the image-pooling branch (plain global average of the input);
* the 1x1 and 3x3 branches are depthwise (``groups=C``) + BN + ReLU, so the attention stays cheap
  (SE's point) and each channel's descriptor still comes from its own channel, as SE's squeeze does;
* each branch is globally averaged; the ``S`` per-channel descriptors are fused into one ``z_c``
  by a per-channel learned weighting (a grouped 1x1 convolution ``C*S -> C``, ``groups=C``),
  initialised to the plain mean of the branches. ASPP's own 1x1 projection is a dense ``S*C -> C``
  map; the grouped form keeps ``z in R^C`` channel-aligned, which formula (2) of the paper needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from fer_models.layers.channel_attn import reduced_channels

__all__ = ["SEAsppModule"]


class SEAsppModule(nn.Module):
    """Return ``x * sigmoid(fc2(relu(fc1(aspp_squeeze(x)))))``.

    Args:
        channels: number of input channels ``C``.
        rd_ratio: hidden width of the excitation as a fraction of ``C`` (``1/r``; SE: 1/16).
        rd_channels: explicit hidden width (overrides ``rd_ratio``).
        rates: dilation rates of the 3x3 atrous branches (DeepLabv3 at output stride 16: 6, 12, 18).
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1.0 / 16,
        rd_channels: int | None = None,
        rates: Sequence[int] = (6, 12, 18),
    ) -> None:
        super().__init__()
        if not rates or any(int(r) < 1 for r in rates):
            raise ValueError(f"rates must be positive integers, got {tuple(rates)!r}")
        self.rates = tuple(int(r) for r in rates)
        branches: list[nn.Module] = [_dw_bn_relu(channels, 1, 1)]
        branches += [_dw_bn_relu(channels, 3, r) for r in self.rates]
        self.branches = nn.ModuleList(branches)
        self.num_scales = len(branches) + 1  # + the image-pooling branch
        self.fuse = nn.Conv2d(channels * self.num_scales, channels, 1, groups=channels)
        hidden = reduced_channels(channels, rd_ratio, rd_channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()
        self.reset_fuse()

    def reset_fuse(self) -> None:
        """Initialise the scale fusion to the plain mean of the branch descriptors."""
        nn.init.constant_(self.fuse.weight, 1.0 / self.num_scales)
        nn.init.zeros_(self.fuse.bias)

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        """The ASPP descriptor ``z`` of shape ``(B, C, 1, 1)``."""
        pooled = [x.mean(dim=(2, 3), keepdim=True)]
        pooled += [b(x).mean(dim=(2, 3), keepdim=True) for b in self.branches]
        z = torch.stack(pooled, dim=2)  # (B, C, S, 1, 1): channel-major, as the grouped conv needs
        return self.fuse(z.flatten(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.squeeze(x)))))


def _dw_bn_relu(channels: int, kernel_size: int, dilation: int) -> nn.Sequential:
    """Depthwise conv (same size output) + BN + ReLU: one ASPP branch."""
    pad = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(channels, channels, kernel_size, padding=pad, dilation=dilation, groups=channels, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    )
