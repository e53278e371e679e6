"""CBAM: channel attention (avg+max pooling, shared MLP) followed by spatial attention.

Paper: Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018,
https://arxiv.org/abs/1807.06521. Used once by DNN-CBAM (paper 001) between its middle and output
modules. As timm notes, CBAM's benefit is mixed across backbones; the FER paper reports +1.2 points.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fer_models.layers.channel_attn import ChannelAttn

__all__ = ["SpatialAttn", "CbamModule"]


class SpatialAttn(nn.Module):
    """Return ``x * sigmoid(bn(conv_k([mean_c(x); max_c(x)])))`` (CBAM's spatial branch).

    Args:
        kernel_size: size of the convolution over the two pooled maps (CBAM: 7).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.gate(self.bn(self.conv(pooled)))


class CbamModule(nn.Module):
    """Channel attention then spatial attention, each multiplying its input.

    Args:
        channels: number of input channels.
        rd_ratio: hidden width of the channel MLP as a fraction of ``channels`` (CBAM: 1/16).
        rd_channels: explicit hidden width of the channel MLP.
        spatial_kernel_size: kernel of the spatial branch (CBAM: 7).
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1.0 / 16,
        rd_channels: int | None = None,
        spatial_kernel_size: int = 7,
    ) -> None:
        super().__init__()
        self.channel = ChannelAttn(channels, rd_ratio=rd_ratio, rd_channels=rd_channels)
        self.spatial = SpatialAttn(spatial_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))
