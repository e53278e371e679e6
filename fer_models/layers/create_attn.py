"""Build an attention layer by name, as timm's ``create_attn``: blocks take ``attn_layer="eca"`` etc.

Every layer class takes ``channels`` as its first argument. To add a layer, put it in its own file
in this package and add one entry to ``_ATTN_LAYERS`` below.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from fer_models.layers.cbam import CbamModule
from fer_models.layers.channel_attn import ChannelAttn
from fer_models.layers.eca import EcaModule
from fer_models.layers.non_local import NonLocalAttn
from fer_models.layers.se import SEModule
from fer_models.layers.se_aspp import SEAsppModule

__all__ = ["get_attn", "create_attn"]

_ATTN_LAYERS: dict[str, type[nn.Module]] = {
    "eca": EcaModule,
    "se": SEModule,
    "se_aspp": SEAsppModule,
    "cbam": CbamModule,
    "channel": ChannelAttn,
    "non_local": NonLocalAttn,
}


def get_attn(name: str | None) -> type[nn.Module] | None:
    """The attention class called ``name``; ``None``, ``""`` and ``"none"`` mean no attention."""
    if name is None or name in ("", "none"):
        return None
    try:
        return _ATTN_LAYERS[name]
    except KeyError:
        raise ValueError(f"unknown attention {name!r}; known: {', '.join(sorted(_ATTN_LAYERS))}") from None


def create_attn(name: str | None, channels: int, **kwargs: Any) -> nn.Module:
    """Instantiate attention ``name`` over ``channels``; ``nn.Identity()`` when ``name`` means none."""
    cls = get_attn(name)
    return nn.Identity() if cls is None else cls(channels, **kwargs)
