"""Non-local self-attention over all spatial positions, with a zero-initialised residual scale.

Papers: Wang et al., "Non-local Neural Networks", CVPR 2018, https://arxiv.org/abs/1711.07971
(embedded-Gaussian form); Zhang et al., "Self-Attention GANs", ICML 2019 (learnable ``gamma``
initialised to 0). This is the self-attention ``Ma`` of the residual attention network (paper 000):
``theta, phi, g`` are 1x1 convolutions to ``Cl < C`` channels, ``softmax(theta(x)^T phi(x))`` over
all positions ``j`` weights ``g(x)``, a 1x1 convolution restores ``C`` channels, and the output is
``gamma * o + x``. With ``gamma = 0`` (its initial value) the module is exactly the identity.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fer_models.layers.channel_attn import reduced_channels

__all__ = ["NonLocalAttn"]


class NonLocalAttn(nn.Module):
    """Embedded-Gaussian non-local block ``y = gamma * W_v(softmax(theta^T phi) g) + x``.

    Args:
        channels: number of input channels ``C``.
        rd_ratio: embedding width ``Cl`` as a fraction of ``C`` (SAGAN: 1/8).
        rd_channels: explicit embedding width ``Cl`` (overrides ``rd_ratio``).
    """

    def __init__(self, channels: int, rd_ratio: float = 1.0 / 8, rd_channels: int | None = None) -> None:
        super().__init__()
        inner = reduced_channels(channels, rd_ratio, rd_channels)
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.out = nn.Conv2d(inner, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, Cl)
        k = self.phi(x).flatten(2)  # (B, Cl, N)
        v = self.g(x).flatten(2).transpose(1, 2)  # (B, N, Cl)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # (B, N, N), row i: weights over positions j
        o = torch.bmm(attn, v).transpose(1, 2).reshape(b, -1, h, w)
        return self.gamma * self.out(o) + x
