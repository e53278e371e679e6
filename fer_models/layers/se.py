"""SE: squeeze-and-excitation channel attention.

Paper: Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018, https://arxiv.org/abs/1709.01507.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fer_models.layers.channel_attn import reduced_channels

__all__ = ["SEModule"]


class SEModule(nn.Module):
    """Return ``x * sigmoid(fc2(relu(fc1(avgpool(x)))))``.

    Args:
        channels: number of input channels.
        rd_ratio: hidden width as a fraction of ``channels`` (SE: 1/16).
        rd_channels: explicit hidden width (overrides ``rd_ratio``).
    """

    def __init__(self, channels: int, rd_ratio: float = 1.0 / 16, rd_channels: int | None = None) -> None:
        super().__init__()
        hidden = reduced_channels(channels, rd_ratio, rd_channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))
