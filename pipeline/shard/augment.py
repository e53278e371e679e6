"""Offline augmentation: albumentations pipelines declared in ``params.yaml``, replayable per row.

A preset is a list of transforms, each a mapping with ``transform`` (an albumentations class name)
and its keyword arguments (lists become tuples)::

    augment:
      defaults:
        preset: none
        factor: 1
        presets:
          dfnet:
            - {transform: Erasing, p: 0.5, fill: 0}

:func:`build_pipeline` turns it into ``A.Compose(..., save_applied_params=True)`` (albumentations
2.0.8 has it; ``ReplayCompose`` there takes no seed). :func:`augment_image` reseeds the pipeline
for every derived row from ``(seed, parent image_id, copy index)``, so a row's result does not
depend on row order, chunking or worker count, and returns the parameters that were applied
(JSON-safe) for the row's ``augmentation`` column.

Images are handled in RGB (or single-channel grey) order; the PNG codec in between is cv2's BGR.
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Sequence

import numpy as np

from pipeline.shard.seeding import stable_seed

NONE = "none"


class AugmentError(ValueError):
    """An augmentation preset or setting that cannot be built (with the reason)."""


def preset_spec(cfg: dict[str, Any], name: str = "dataset") -> list[dict[str, Any]]:
    """The transform list of the active preset (``[]`` for ``none``)."""
    preset = cfg.get("preset", NONE) or NONE
    if preset == NONE:
        return []
    presets = cfg.get("presets") or {}
    if preset not in presets:
        raise AugmentError(f"{name}: augment.preset {preset!r} is not defined; known: {sorted(presets)}")
    spec = presets[preset]
    if not isinstance(spec, list) or not spec:
        raise AugmentError(f"{name}: augment.presets.{preset} must be a non-empty list of transforms")
    return spec


def _arg(value: Any) -> Any:
    return tuple(_arg(v) for v in value) if isinstance(value, list) else value


def build_pipeline(spec: Sequence[dict[str, Any]], seed: int | None = None):
    """``A.Compose`` of the transforms in ``spec`` that records the parameters it applies."""
    import albumentations as A

    transforms = []
    for i, item in enumerate(spec):
        item = dict(item)
        name = item.pop("transform", None)
        cls = getattr(A, str(name), None)
        if cls is None or not isinstance(cls, type):
            raise AugmentError(f"augment: entry {i} names unknown albumentations transform {name!r}")
        try:
            transforms.append(cls(**{k: _arg(v) for k, v in item.items()}))
        except Exception as exc:  # pydantic validation of the arguments
            raise AugmentError(f"augment: entry {i} ({name}) has bad arguments {item}: {exc}") from exc
    return A.Compose(transforms, seed=seed, save_applied_params=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 8)  # stable text across platforms' repr of long floats
    return value


def copy_seed(seed: int, parent_id: str, copy: int) -> int:
    """The seed of derived row ``copy`` of ``parent_id``."""
    return stable_seed("augment", seed, parent_id, copy)


def augment_image(pipeline, image: np.ndarray, seed: int) -> tuple[np.ndarray, list[list[Any]]]:
    """``image`` through ``pipeline`` reseeded with ``seed``; returns (image, applied transforms).

    The applied list holds ``[transform name, parameters]`` pairs exactly as albumentations
    sampled them (angles as matrices, crop boxes, erased holes, brightness alpha/beta, ...).
    """
    pipeline.set_random_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image is already gray", category=UserWarning)
        out = pipeline(image=image)
    applied = [[name, _jsonable({k: v for k, v in params.items() if k != "shape"})]
               for name, params in out["applied_transforms"]]
    return np.ascontiguousarray(out["image"]), applied


def augmentation_record(preset: str | None, seed: int | None, copy: int, applied: list) -> str:
    """The ``augmentation`` column value of a derived row (compact, key-sorted JSON)."""
    return json.dumps({"preset": preset, "seed": seed, "copy": copy, "applied": applied},
                      sort_keys=True, separators=(",", ":"))
