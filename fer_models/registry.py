"""Model registry in the manner of timm: ``@register_model`` entrypoints, ``create_model(name, **cfg)``."""

from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model entrypoint under its function name."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def create_model(name: str, num_classes: int = 7, in_chans: int | None = None, **cfg: Any) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs; ``in_chans`` and variant knobs go to its entrypoint.

    ``in_chans=None`` keeps the model's paper default.
    """
    kwargs = dict(cfg)
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    return model_entrypoint(name)(num_classes=num_classes, **kwargs)
