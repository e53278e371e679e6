"""Optimizer and learning-rate schedule of a recipe (``optimizer:`` and ``scheduler:`` settings)."""

from __future__ import annotations

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


def build_scheduler(spec: dict[str, Any] | None, optimizer: torch.optim.Optimizer, epochs: int):
    """``{name: none|plateau|cosine, ...}`` -> a scheduler stepped once per epoch, or None.

    ``plateau`` (EAN: lr × ``factor`` 0.9 when the training loss stops falling for
    ``patience`` epochs) is stepped with the epoch's training loss; the others without argument.
    """
    spec = spec or {}
    name = spec.get("name", "none")
    if name == "none":
        return None
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=float(spec.get("factor", 0.9)), patience=int(spec.get("patience", 2)))
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    raise ValueError(f"unknown scheduler {name!r} (known: none, plateau, cosine)")


def step_scheduler(scheduler, train_loss: float) -> None:
    """Advance ``scheduler`` by one epoch (plateau schedulers watch the training loss)."""
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(train_loss)
    else:
        scheduler.step()
