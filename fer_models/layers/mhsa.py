"""Multi-head self-attention over the positions of an NCHW map, Q/K/V and output made by 1x1 convs.

Paper: Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (multi-head attention); the
"conv + reshape instead of fully connected" form used by the FSA block of DFNet (paper 003,
section 1.2: "具体实现时使用卷积+维度变换代替全连接得到多头的 Q、K、V"), as in BoTNet's MHSA.
A 1x1 convolution on a map is a linear layer applied to every position (token), so this is
exactly a transformer MHSA over the ``H*W`` tokens, without flattening the map outside.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["MultiHeadSelfAttention2d"]


class MultiHeadSelfAttention2d(nn.Module):
    """``proj(concat_h softmax(q_h^T k_h / sqrt(d)) v_h)`` over all ``H*W`` positions.

    Args:
        channels: number of input (= output) channels ``C``; split into ``num_heads`` heads.
        num_heads: number of heads; must divide ``channels``.
        qkv_bias: bias in the Q/K/V projection.
        proj_bias: bias in the output projection.
    """

    def __init__(self, channels: int, num_heads: int = 8, qkv_bias: bool = False, proj_bias: bool = True) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide channels={channels}")
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=qkv_bias)
        self.proj = nn.Conv2d(channels, channels, 1, bias=proj_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).reshape(b, 3, self.num_heads, self.head_dim, h * w)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # each (B, heads, d, N)
        attn = torch.softmax((q.transpose(-2, -1) @ k) * self.scale, dim=-1)  # (B, heads, N, N)
        out = v @ attn.transpose(-2, -1)  # (B, heads, d, N)
        return self.proj(out.reshape(b, c, h, w))
