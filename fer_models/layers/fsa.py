"""FSA: "fast self-attention", a channel-reduced pre-norm transformer block on an NCHW map.

Paper 003 (DFNet, section 1.2, figure 3): input ``B x c x 7 x 7`` (``c = 2048`` after ResNet50);
a 1x1 conv reduces ``c`` to ``c * r`` (``r = 0.25``); LayerNorm; multi-head self-attention whose
Q/K/V are made by convolution + reshape; a residual; LayerNorm; an MLP of two 1x1 convs; a
residual; a 1x1 conv restores ``c``. The paper leaves open, and this layer chooses:

* heads: 8 (head dim 64 at ``c*r = 512``); MLP hidden ``4 * c * r`` with GELU (transformer
  defaults); pre-norm residuals ``t + MHSA(LN(t))``, ``t + MLP(LN(t))`` (the text's order);
* Q/K/V without bias, the MHSA output projection and every other 1x1 conv with bias;
* ``proj_shortcut``: the text ends at the 1x1 up-conv (no outer residual). As written the block has
  5,250,560 parameters at ``c = 2048``; DFNet's Table 2 implies 9.44-9.45M (32.97M - 23.52M and
  66.53M - 57.09M). The gap is one ``c x c`` 1x1 convolution (4,194,304), so ``proj_shortcut=True``
  adds the block input through a bias-free 1x1 projection (a ResNet projection shortcut), which
  gives 9,444,864 and reproduces both Table 2 totals to the reported two decimals. It is an
  inference from the parameter counts, not something the text states; off by default here.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fer_models.layers.mhsa import MultiHeadSelfAttention2d
from fer_models.layers.norm import LayerNorm2d

__all__ = ["FastSelfAttention"]


class FastSelfAttention(nn.Module):
    """``up(T(down(x)))`` (``+ shortcut(x)`` if ``proj_shortcut``), ``T`` a pre-norm transformer block.

    Args:
        channels: input (= output) channels ``c``.
        rd_ratio: width of the transformer as a fraction of ``c`` (paper: ``r = 0.25``).
        num_heads: attention heads; must divide ``round(c * rd_ratio)``.
        mlp_ratio: MLP hidden width as a multiple of the transformer width.
        qkv_bias: bias in the Q/K/V convolution.
        proj_shortcut: add ``conv1x1(x)`` (``c -> c``, no bias) to the output (see module docstring).
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 0.25,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        proj_shortcut: bool = False,
    ) -> None:
        super().__init__()
        dim = max(1, int(round(channels * rd_ratio)))
        hidden = int(round(dim * mlp_ratio))
        self.down = nn.Conv2d(channels, dim, 1)
        self.norm1 = LayerNorm2d(dim)
        self.attn = MultiHeadSelfAttention2d(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.norm2 = LayerNorm2d(dim)
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1))
        self.up = nn.Conv2d(dim, channels, 1)
        self.shortcut = nn.Conv2d(channels, channels, 1, bias=False) if proj_shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.down(x)
        t = t + self.attn(self.norm1(t))
        t = t + self.mlp(self.norm2(t))
        out = self.up(t)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return out
