"""A recipe's starting weights (``train.<recipe>.weights``): a state dict file under ``data/weights/``.

The file is an input like a dataset: DVC tracks the folder (``dvc add data/weights``, commit
``data/weights.dvc``), the train and cv stages depend on it, ``dvc push``/``dvc pull`` share it.
The network loads it through ``fer_models.create_model(..., pretrained=<file>)`` (a torchvision
state dict of the backbone, or a whole model's); the checkpoint a run writes holds every weight,
so nothing downstream (evaluate, predict, distill) ever needs the file again.

When the named file is missing and its name is that of the network's public source (DFNet:
``resnet50-0676ba61.pth``, torchvision's ImageNet ResNet50), :func:`ensure_weights` fetches it with
torchvision's weights API (into torch's cache, then copied here) when online; offline it stops at
once, before anything trains, with one line saying where to put the file. A run's key holds the
file's SHA-256, so other weights start a run afresh instead of resuming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pipeline.core.digest import file_sha256


class WeightsError(FileNotFoundError):
    """A recipe's weights file is missing and cannot be fetched: one line saying where to put it."""


def weights_of(recipe: dict[str, Any]) -> Path | None:
    """The recipe's ``weights`` file (None: the network's own initialisation)."""
    path = recipe.get("weights")
    return Path(path) if path else None


def ensure_weights(recipe: dict[str, Any], recipe_name: str, log: Callable[[str], None] = print) -> Path | None:
    """The recipe's weights file, fetched from the network's public source when it is missing and
    named after it; raises :class:`WeightsError` otherwise (offline, or a file nobody publishes)."""
    import fer_models

    path = weights_of(recipe)
    if path is None or path.is_file():
        return path
    arch = recipe.get("arch") or recipe_name
    model_args = dict(recipe.get("model_args") or {})
    source = fer_models.pretrained_cfg(arch, **model_args) if arch in fer_models.list_models() else None
    share = f"then `dvc add {path.parent}` to share it"
    if not source or source.get("source") != "torchvision" or source.get("file") != path.name:
        raise WeightsError(f"train.{recipe_name}.weights: {path} not found: put the state dict there, {share}")
    try:
        fer_models.pretrained.fetch(source, path)
    except fer_models.PretrainedUnavailable as exc:
        raise WeightsError(f"train.{recipe_name}.weights: {path} not found and {exc}; {share}") from None
    log(f"train.{recipe_name}.weights: fetched torchvision {source['weights']} -> {path}; `dvc add {path.parent}` "
        f"and commit {path.parent}.dvc to share it")
    return path


def weights_key(path: Path | None) -> str | None:
    """SHA-256 (hex, 16 chars) of the weights file, for a run's key (None without weights)."""
    if path is None:
        return None
    return file_sha256(path)[:16]
