"""Channel attention with average- and max-pooled descriptors through one shared MLP.

Paper: Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018,
https://arxiv.org/abs/1807.06521 (its channel branch); also the channel attention ``Mc`` of the
residual attention network (paper 000): ``Mc(F) = sigmoid(W1 relu(W0 avg(F)) + W1 relu(W0 max(F)))``
with ``W0 in R^{C/r x C}``, ``W1 in R^{C x C/r}``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["ChannelAttn", "reduced_channels"]


def reduced_channels(channels: int, rd_ratio: float, rd_channels: int | None = None, min_channels: int = 1) -> int:
    """Hidden width of a squeeze MLP: ``rd_channels`` if given, else ``channels * rd_ratio`` (at least ``min_channels``)."""
    if rd_channels is not None:
        return rd_channels
    return max(min_channels, int(round(channels * rd_ratio)))


class ChannelAttn(nn.Module):
    """Return ``x * sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))``, the MLP shared by both pools.

    Args:
        channels: number of input channels.
        rd_ratio: hidden width of the MLP as a fraction of ``channels`` (``1/r``; CBAM uses r = 16).
        rd_channels: explicit hidden width (overrides ``rd_ratio``).
        bias: whether the MLP's 1x1 convolutions have biases (CBAM's reference code: yes).
    """

    def __init__(
        self, channels: int, rd_ratio: float = 1.0 / 16, rd_channels: int | None = None, bias: bool = True
    ) -> None:
        super().__init__()
        hidden = reduced_channels(channels, rd_ratio, rd_channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.gate = nn.Sigmoid()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The channel weights ``Mc(x)``, shape ``(B, C, 1, 1)``."""
        avg = self.fc2(self.act(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        mx = self.fc2(self.act(self.fc1(x.amax(dim=(2, 3), keepdim=True))))
        return self.gate(avg + mx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)
