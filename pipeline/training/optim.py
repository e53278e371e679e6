"""Optimizer and learning-rate schedule of a recipe (``optimizer:`` and ``scheduler:`` settings)."""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch


def build_optimizer(spec: dict[str, Any], params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """``{name: adam|adamw|sgd, lr, weight_decay, momentum}`` -> a torch optimizer (momentum: sgd only)."""
    name = spec.get("name", "adam").lower()
    lr = float(spec["lr"])
    wd = float(spec.get("weight_decay", 0.0))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=float(spec.get("momentum", 0.9)))
    raise ValueError(f"unknown optimizer {name!r} (known: adam, adamw, sgd)")


MONITORS = ("train_loss", "val_loss", "val_acc")  # what a plateau scheduler may watch


class Plateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """``ReduceLROnPlateau`` that knows which epoch metric it watches (``monitor``: ``train_loss``,
    ``val_loss`` or ``val_acc``), so the loop steps it with that one. ``monitor`` is saved in the
    scheduler's state dict with the rest, so a resumed run watches the same metric."""

    def __init__(self, optimizer: torch.optim.Optimizer, monitor: str, factor: float, patience: int) -> None:
        if monitor not in MONITORS:
            raise ValueError(f"scheduler.monitor must be one of {', '.join(MONITORS)}, got {monitor!r}")
        super().__init__(optimizer, mode="max" if monitor == "val_acc" else "min", factor=factor,
                         patience=patience)
        self.monitor = monitor


def build_scheduler(spec: dict[str, Any] | None, optimizer: torch.optim.Optimizer, epochs: int):
    """``{name: none|plateau|cosine|step, ...}`` -> a scheduler stepped once per epoch, or None.

    ``plateau`` (EAN: lr × ``factor`` 0.9 when the watched metric stops improving for ``patience``
    epochs) watches ``monitor``: the epoch's training loss (default), or the validation loss or
    accuracy — the papers' FER2013 protocol judges the plateau on PublicTest, the validation part.
    ``step`` keeps the lr until epoch ``start`` and then multiplies it by ``factor`` every ``every``
    epochs (torch's ``MultiStepLR`` at epochs start + every, start + 2 every, ...). With 80, 5, 0.9
    it is the schedule of the widely used FER2013 training script whose other constants paper 004
    shares (44 px crops, ten-crop, SGD lr 0.01, batch 128, × 0.9).
    """
    spec = spec or {}
    name = spec.get("name", "none")
    if name == "none":
        return None
    if name == "plateau":
        return Plateau(optimizer, str(spec.get("monitor", "train_loss")), float(spec.get("factor", 0.9)),
                       int(spec.get("patience", 2)))
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "step":
        start, every = int(spec.get("start", 0)), int(spec.get("every", 1))
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(range(start + every, epochs + 1, every)),
                                                    gamma=float(spec.get("factor", 0.9)))
    raise ValueError(f"unknown scheduler {name!r} (known: none, plateau, cosine, step)")


def step_scheduler(scheduler, metrics: dict[str, float]) -> None:
    """Advance ``scheduler`` by one epoch; a plateau scheduler with the metric it watches, from
    ``metrics`` (``train_loss``, ``val_loss``, ``val_acc``). A run without validation rows judges a
    validation plateau on the training loss instead (its validation metrics are NaN)."""
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        monitor = getattr(scheduler, "monitor", "train_loss")
        value = metrics[monitor]
        if math.isnan(value):
            value = metrics["train_loss"] if monitor == "val_loss" else -metrics["train_loss"]
        scheduler.step(value)
    else:
        scheduler.step()
