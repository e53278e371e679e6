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
                    in_chans: int, label_ids: list[int]) -> tuple[str, dict[str, Any]]:
    """Load the pretrained weights at ``path`` into ``model`` (same network and input channels).

    Where the pretraining's classes differ from this run's (FER2013 has neutral and no contempt,
    CK+48 contempt and no neutral), the network's classifier (``default_cfgs[arch]["classifier"]``)
    keeps the pretrained rows of the classes both have and starts the others from the model's own
    initialisation; every other weight is kept.

    Returns the checkpoint's ``params_hash`` (it goes into the run key of the training that starts
    from it) and what was kept: ``{"source", "kept_classes", "new_classes"}`` (class names), written
    into the fine-tuned checkpoint. Raises ``FileNotFoundError`` when there is no checkpoint and
    ``ValueError`` naming the file when it holds another network or other input channels.
    """
    from fer_models import model_default_cfg

    from pipeline.core.labels import LABEL_NAMES

    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"init: pretrained: no pretrained checkpoint at {path} (list the recipe in "
                                f"pretrain.models and run `fer-pipeline pretrain`, stage pretrain)")
    ckpt = read_checkpoint(path)
    mine = {"model": arch, "model_args": model_args, "in_chans": in_chans}
    wrong = [f"{k} {ckpt[k]} (this run: {mine[k]})" for k in mine if ckpt[k] != mine[k]]
    if wrong:
        raise ValueError(f"{path}: the pretrained network differs from this run's: {'; '.join(wrong)}")
    theirs, ours = [int(i) for i in ckpt["label_ids"]], [int(i) for i in label_ids]
    state = dict(ckpt["state_dict"])
    if theirs != ours:
        head = model_default_cfg(arch).get("classifier")
        if not head:
            raise ValueError(f"{path}: pretrained on classes {ckpt['label_names']}, this run has "
                             f"{[LABEL_NAMES[i] for i in ours]}, and {arch} names no classifier to replace")
        own = model.state_dict()
        for key, value in state.items():
            if not key.startswith(f"{head}.") or value.shape == own[key].shape and value.ndim == 0:
                continue
            if value.ndim and value.shape[0] == len(theirs) and own[key].shape[0] == len(ours) \
                    and value.shape[1:] == own[key].shape[1:]:
                rows = own[key].clone()  # per-class rows: shared classes keep theirs, new ones the init
                for c in set(theirs) & set(ours):
                    rows[ours.index(c)] = value[theirs.index(c)]
                state[key] = rows
            elif value.shape != own[key].shape:
                state[key] = own[key]
    model.load_state_dict(state)
    info = {"source": str(ckpt.get("dataset", "")),
            "kept_classes": [LABEL_NAMES[c] for c in ours if c in theirs],
            "new_classes": [LABEL_NAMES[c] for c in ours if c not in theirs]}
    return str(ckpt.get("params_hash", "")), info
