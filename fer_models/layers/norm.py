"""LayerNorm over the channel dimension of an NCHW map (each position normalised like a token).

As timm's ``LayerNorm2d``: a transformer's LayerNorm applied to ``B x C x H x W`` feature maps
without flattening them; exports to ONNX ``LayerNormalization`` (opset 17+).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LayerNorm2d"]


class LayerNorm2d(nn.LayerNorm):
    """``nn.LayerNorm(channels)`` applied at every spatial position of an NCHW tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
