"""Model registry in the manner of timm: ``@register_model`` entrypoints, ``create_model(name, pretrained=..., **cfg)``.

Convention for a model file ``fer_models/<model>.py`` (read by ``fer-pipeline models``, training and
evaluation through :func:`model_default_cfg` and :func:`model_variants`):

* ``default_cfgs = {"<entrypoint>": {...}}`` -- timm's pattern. Keys: ``paper`` (citation),
  ``input_size`` ``(C, H, W)`` at which the paper runs the model, ``num_classes``, and where the
  paper gives them ``paper_params`` (int) and ``paper_flops`` (float, with ``flops_convention``
  ``"fvcore"`` -- one multiply-add = one flop -- or ``"paper"`` -- conv MACs + 2 x BN outputs).
* ``VARIANTS = {"<entrypoint>": {"default": {}, "<variant>": {<entrypoint kwargs>}, ...}}`` -- the
  named variants (ablations, table rows); a variant may carry ``paper_params`` / ``paper_flops`` in
  ``default_cfgs[...]["variants"][<variant>]``.
* ``default_cfgs[...]["pretrained"]`` -- where the paper's starting weights come from, when a public
  source exists (see :mod:`fer_models.pretrained`); a module-level ``pretrained_cfg(**kwargs)``
  gives it per variant (DFNet's backbone). ``default_cfgs[...]["classifier"]``: the head's module
  name, left at its initialisation when a loaded state dict has another number of classes.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from typing import Any, Callable, Iterable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model entrypoint under its function name."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models(filter: str | Iterable[str] = "", exclude_filters: str | Iterable[str] = "",
                pretrained: bool = False) -> list[str]:
    """Registered model names, sorted; as timm: ``filter`` (fnmatch pattern(s), e.g. ``"ean*"``) keeps
    the names matching any of them, ``exclude_filters`` drops those matching any, ``pretrained`` keeps
    the models with public pretrained weights."""
    def patterns(p: str | Iterable[str]) -> list[str]:
        return [p] if isinstance(p, str) else list(p)

    names = sorted(_REGISTRY)
    if filter:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, f) for f in patterns(filter))]
    if exclude_filters:
        names = [n for n in names if not any(fnmatch.fnmatchcase(n, f) for f in patterns(exclude_filters))]
    if pretrained:
        names = [n for n in names if model_default_cfg(n).get("pretrained")]
    return names


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def create_model(name: str, num_classes: int = 7, in_chans: int | None = None,
                 pretrained: bool | str | os.PathLike | None = None, **cfg: Any) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs; ``in_chans`` and variant knobs go to its entrypoint.

    ``in_chans=None`` keeps the model's paper default. ``pretrained`` (timm's keyword):

    * ``None`` (default): as the entrypoint builds it (random initialisation; ``onet_probe``'s
      trunk is ONet's weights by construction);
    * ``False``: no pretrained weights at all (``onet_probe``: a random trunk too);
    * ``True``: the paper's weights from their public source (``default_cfgs[name]["pretrained"]``,
      e.g. torchvision's ImageNet ResNet50 for DFNet's backbone, fetched into torch's cache when
      online); ``ValueError`` for a model without one, :class:`fer_models.pretrained.PretrainedUnavailable`
      offline when the file is not in the cache;
    * a path: a local state dict of the whole model, or of the source's ``target`` (DFNet: a
      torchvision ResNet state dict for the backbone), loaded exactly.
    """
    from fer_models import pretrained as weights

    kwargs = dict(cfg)
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    source = pretrained_cfg(name, **kwargs)
    if source and source.get("source") == "builtin" and pretrained is not None:
        kwargs["pretrained"] = pretrained is True  # the entrypoint's own keyword; a file replaces its weights below
    model = model_entrypoint(name)(num_classes=num_classes, **kwargs)
    if pretrained is None or pretrained is False or (pretrained is True and source and source.get("source") == "builtin"):
        return model
    weights.load_pretrained(model, name, pretrained, source, model_default_cfg(name).get("classifier"))
    return model


def pretrained_cfg(name: str, **kwargs: Any) -> dict[str, Any] | None:
    """The public source of ``name``'s pretrained weights for these entrypoint ``kwargs`` (None: none):
    the model file's ``pretrained_cfg(**kwargs)`` when it has one, else ``default_cfgs[name]["pretrained"]``."""
    module = sys.modules[model_entrypoint(name).__module__]
    per_variant = getattr(module, "pretrained_cfg", None)
    if callable(per_variant):
        return per_variant(**kwargs)
    cfg = model_default_cfg(name).get("pretrained")
    return dict(cfg) if cfg else None


def model_default_cfg(name: str) -> dict[str, Any]:
    """The ``default_cfgs[name]`` of the file that registers ``name`` (empty when it has none)."""
    module = sys.modules[model_entrypoint(name).__module__]
    return dict(getattr(module, "default_cfgs", {}).get(name, {}))


def model_variants(name: str) -> dict[str, dict[str, Any]]:
    """The named variants of ``name`` (variant -> entrypoint kwargs); at least ``{"default": {}}``."""
    module = sys.modules[model_entrypoint(name).__module__]
    return dict(getattr(module, "VARIANTS", {}).get(name, {"default": {}}))
