"""The trained-model checkpoint: weights + what is needed to rebuild and feed the network.

``checkpoint.pt`` holds ``model`` (registry name), ``model_args`` (variant knobs),
``num_classes``, ``in_chans``, ``recipe`` (the full training recipe, whose ``input`` settings
evaluation and prediction reuse), ``label_names`` / ``label_ids`` (the dataset's classes in
output order, and their unified indices), ``params_hash``, ``dataset``, ``fold``, ``best_epoch``,
``val_acc`` and ``state_dict``. Any consumer rebuilds the network with :func:`load_model`.

The state dict holds every weight: a run that started from a pretrained file (the recipe's
``weights``) records the file (``weights``: path and SHA-256) for the record only, and loading
never opens it, so a checkpoint pulled without the file loads as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.training.loop import save_torch

REQUIRED = ("model", "model_args", "num_classes", "in_chans", "recipe", "label_names", "state_dict")
#: network keywords that name a weights file: never passed when rebuilding (older checkpoints hold
#: DFNet's ``pretrained_path``; the file may be gone, and the state dict replaces what it held anyway)
FILE_ARGS = ("pretrained_path",)


def build_model(name: str, num_classes: int, in_chans: int, model_args: dict[str, Any] | None,
                weights: str | Path | None = None) -> torch.nn.Module:
    """``fer_models.create_model`` with the recipe's variant knobs, starting from the state dict file
    ``weights`` when given (``create_model(..., pretrained=weights)``)."""
    import fer_models

    args = {k: v for k, v in (model_args or {}).items()
            if k not in FILE_ARGS and not (k == "pretrained" and isinstance(v, (str, Path)))}
    if weights is not None:
        args["pretrained"] = str(weights)
    return fer_models.create_model(name, num_classes=num_classes, in_chans=in_chans, **args)


def save_checkpoint(path: str | Path, network: torch.nn.Module, **meta: Any) -> None:
    """Write ``meta`` + the weights of ``network`` atomically to ``path`` (see module doc for keys)."""
    missing = [k for k in REQUIRED if k != "state_dict" and k not in meta]
    if missing:
        raise ValueError(f"{path}: checkpoint metadata lacks {missing}")
    save_torch({**meta, "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()}}, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, with a clear error for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found (train the model first)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED):
        raise ValueError(f"{path}: not a fer-pipeline checkpoint (needs keys {list(REQUIRED)})")
    return ckpt


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the network of checkpoint ``path`` in eval mode, and return it with the checkpoint."""
    ckpt = read_checkpoint(path)
    model = build_model(ckpt["model"], ckpt["num_classes"], ckpt["in_chans"], ckpt["model_args"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


def load_pretrained(model: torch.nn.Module, path: str | Path | None, *, arch: str, model_args: dict[str, Any],
                    in_chans: int, label_ids: list[int]) -> str:
    """Load the pretrained weights at ``path`` into ``model`` (same network, classes and channels).

    Returns the checkpoint's ``params_hash``, which goes into the run key of the training that
    starts from it. Raises ``FileNotFoundError`` when there is no checkpoint and ``ValueError``
    naming the file when it holds another network, other classes or other input channels.
    """
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"init: pretrained: no pretrained checkpoint at {path} (list the recipe in "
                                f"pretrain.models and run `fer-pipeline pretrain`, stage pretrain)")
    ckpt = read_checkpoint(path)
    mine = {"model": arch, "model_args": model_args, "in_chans": in_chans, "label_ids": list(label_ids)}
    theirs = {k: (list(ckpt[k]) if k == "label_ids" else ckpt[k]) for k in mine}
    wrong = [f"{k} {theirs[k]} (this run: {mine[k]})" for k in mine if theirs[k] != mine[k]]
    if wrong:
        raise ValueError(f"{path}: the pretrained network differs from this run's: {'; '.join(wrong)}")
    model.load_state_dict(ckpt["state_dict"])
    return str(ckpt.get("params_hash", ""))
