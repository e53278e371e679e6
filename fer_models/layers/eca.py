"""ECA: Efficient Channel Attention (local cross-channel interaction by a 1D convolution).

Paper: Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks",
CVPR 2020, https://arxiv.org/abs/1910.03151. EAN (paper 004) uses it with ``k = 3`` and no bias,
which is exactly ``kernel_size`` learnable weights per module (3 per block, 18 in EAN).
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["EcaModule"]


class EcaModule(nn.Module):
    """Gate each channel by a sigmoid of a 1D convolution over the globally average-pooled channels.

    Args:
        channels: number of input channels (kept for the common layer signature; ECA's weights do
            not depend on it when ``kernel_size`` is given).
        kernel_size: size of the 1D convolution across channels (odd).
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"ECA kernel_size must be odd, got {kernel_size}")
        self.channels = channels
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3)).unsqueeze(1)  # (B, 1, C)
        y = self.gate(self.conv(y)).transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)
        return x * y
