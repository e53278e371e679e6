"""Model registry in the manner of timm: ``@register_model`` entrypoints, ``create_model(name, **cfg)``.

Convention for a model file ``fer_models/<model>.py`` (read by ``fer-pipeline models``, training and
evaluation through :func:`model_default_cfg` and :func:`model_variants`):

* ``default_cfgs = {"<entrypoint>": {...}}`` -- timm's pattern. Keys: ``paper`` (citation),
  ``input_size`` ``(C, H, W)`` at which the paper runs the model, ``num_classes``, and where the
  paper gives them ``paper_params`` (int) and ``paper_flops`` (float, with ``flops_convention``
  ``"fvcore"`` -- one multiply-add = one flop -- or ``"paper"`` -- conv MACs + 2 x BN outputs).
* ``VARIANTS = {"<entrypoint>": {"default": {}, "<variant>": {<entrypoint kwargs>}, ...}}`` -- the
  named variants (ablations, table rows); a variant may carry ``paper_params`` / ``paper_flops`` in
  ``default_cfgs[...]["variants"][<variant>]``.
"""

from __future__ import annotations

import sys
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


def model_default_cfg(name: str) -> dict[str, Any]:
    """The ``default_cfgs[name]`` of the file that registers ``name`` (empty when it has none)."""
    module = sys.modules[model_entrypoint(name).__module__]
    return dict(getattr(module, "default_cfgs", {}).get(name, {}))


def model_variants(name: str) -> dict[str, dict[str, Any]]:
    """The named variants of ``name`` (variant -> entrypoint kwargs); at least ``{"default": {}}``."""
    module = sys.modules[model_entrypoint(name).__module__]
    return dict(getattr(module, "VARIANTS", {}).get(name, {"default": {}}))
