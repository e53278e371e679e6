"""The epoch loop shared by ``train`` and every ``distill`` round.

:func:`fit` trains for a number of epochs, validates after each, keeps the weights of the best
validation epoch (model selection), logs per-epoch history with DVCLive, shows a tqdm bar, and
writes ``last.pt`` atomically after every epoch. When ``last.pt`` of the same run key exists (same
recipe, data and seed: see ``recipe.fingerprint``) and is not finished, :func:`fit` resumes from it,
restoring weights, optimizer, scheduler, RNG and shuffling state, so an interrupted run ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.core.atomic import atomic_path
from pipeline.training.losses import LossFn
from pipeline.training.optim import step_scheduler
from pipeline.training.recipe import rng_state, set_rng_state


@dataclass
class FitResult:
    """What :func:`fit` hands back: the selected weights and the per-epoch history."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_acc: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file renamed into place (never a half-written file)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@torch.no_grad()
def predict_proba(model: torch.nn.Module, loader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities ``(N, K)`` and labels ``(N,)`` of ``loader``.

    Batches of ``B×n×C×H×W`` (test-time crops) are scored crop by crop and the probabilities
    averaged over the ``n`` crops.
    """
    model.eval()
    probs, labels = [], []
    for x, y in loader:
        x = x.to(device)
        if x.ndim == 5:
            b, n = x.shape[:2]
            p = torch.softmax(model(x.flatten(0, 1)), dim=1).view(b, n, -1).mean(1)
        else:
            p = torch.softmax(model(x), dim=1)
        probs.append(p.float().cpu())
        labels.append(y)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


def _train_epoch(model, loader, loss_fn: LossFn, optimizer, device,
                 memory_format: torch.memory_format = torch.contiguous_format, ema=None) -> tuple[float, float]:
    model.train()
    total, correct, loss_sum = 0, 0, 0.0
    for x, y in loader:
        x, y = x.to(device, memory_format=memory_format), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss, logits = loss_fn(model, x, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} (lower the learning rate?)")
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
    return loss_sum / max(total, 1), correct / max(total, 1)


def _val_epoch(model, loader, device, criterion) -> tuple[float, float]:
    if loader is None or len(loader.dataset) == 0:
        return float("nan"), float("nan")
    probs, labels = predict_proba(model, loader, device)
    acc = float((probs.argmax(1) == labels).mean()) if len(labels) else float("nan")
    nll = float(criterion(torch.log(torch.from_numpy(probs).clamp_min(1e-12)), torch.from_numpy(labels)))
    return nll, acc


def will_resume(run_dir: str | Path, run_key: str, epochs: int) -> bool:
    """Whether :func:`fit` will resume from ``run_dir/last.pt`` (same run key, unfinished)."""
    path = Path(run_dir) / "last.pt"
    if not path.is_file():
        return False
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state.get("run_key") == run_key and state["epoch"] < epochs


def fit(model: torch.nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer, scheduler,
        train_loader, val_loader, *, epochs: int, device: torch.device, run_dir: str | Path,
        run_key: str, generator: torch.Generator, live=None, desc: str = "train",
        stop_after_epoch: int | None = None, channels_last: bool = False, ema_decay: float = 0.0) -> FitResult:
    """Train ``epochs`` epochs with model selection on validation accuracy; resumable.

    Args:
        loss_fn: ``loss_fn(model, x, y) -> (loss, logits)``, so distillation can add a teacher.
        run_dir: where ``last.pt`` lives.
        run_key: identity of the run; a ``last.pt`` with another key is ignored (and replaced).
        generator: the DataLoader's shuffling generator (its state is checkpointed).
        live: a ``dvclive.Live`` (or None) receiving ``train/loss``, ``train/acc``, ``val/loss``,
            ``val/acc``, ``lr`` and ``train/images_per_second`` (the training pass, validation
            excluded) per epoch.
        stop_after_epoch: stop (as if interrupted) after this epoch; for tests of resuming.
        channels_last: train in NHWC memory layout (the recipe's ``channels_last``): the same
            results run to run, faster on CPU (bench/train_speed.py, quiet 2 cores: 1.1-1.5x).
        ema_decay: keep an exponential moving average of the weights and buffers with this decay,
            updated after every optimizer step (the recipe's ``ema``; 0 = off). The average, not the
            raw weights, is validated, selected and returned; ``last.pt`` holds both for resuming.

    Selection: the epoch with the highest validation accuracy, ties to the lower validation
    loss, then to the earlier epoch; without validation rows, the last epoch.
    """
    run_dir = Path(run_dir)
    last_path = run_dir / "last.pt"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    nll = torch.nn.NLLLoss()
    start, history = 0, []
    ema = _ema(model, ema_decay)
    evaluated = model if ema is None else ema.module
    best = {"acc": -math.inf, "loss": math.inf, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
    if will_resume(run_dir, run_key, epochs):
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        best = state["best"]
        history = state["history"]
        start = state["epoch"]
        set_rng_state(state["rng"])
        generator.set_state(state["generator"])
    bar = _progress(range(start, epochs), desc, initial=start, total=epochs)
    for epoch in bar:
        started = time.perf_counter()
        train_loss, train_acc = _train_epoch(model, train_loader, loss_fn, optimizer, device, memory_format, ema)
        train_seconds = time.perf_counter() - started
        val_loss, val_acc = _val_epoch(evaluated, val_loader, device, nll)
        lr = optimizer.param_groups[0]["lr"]
        step_scheduler(scheduler, {"train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc})
        row = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
               "val_loss": val_loss, "val_acc": val_acc, "lr": lr}
        history.append(row)
        if math.isnan(val_acc) or (val_acc, -val_loss) > (best["acc"], -best["loss"]):
            best = {"acc": val_acc, "loss": val_loss, "epoch": epoch + 1,
                    "state": copy.deepcopy(evaluated.state_dict())}
        if live is not None:
            live.step = epoch
            for name in ("train_loss", "train_acc", "val_loss", "val_acc"):
                live.log_metric(name.replace("_", "/", 1), row[name])
            live.log_metric("lr", lr)
            # throughput of the training pass alone; logged only (the history stays deterministic)
            live.log_metric("train/images_per_second", len(train_loader.dataset) / max(train_seconds, 1e-9))
            live.next_step()
        save_torch({"run_key": run_key, "epoch": epoch + 1, "model": model.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None, "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "best": best, "history": history, "rng": rng_state(),
                    "generator": generator.get_state()}, last_path)
        bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.3f}", best=f"{best['acc']:.3f}")
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < epochs:
            raise KeyboardInterrupt(f"stopped after epoch {epoch + 1} (stop_after_epoch)")
    return FitResult(best_state=best["state"], best_epoch=best["epoch"], best_val_acc=float(best["acc"]),
                     history=history, resumed_from=start)


def _ema(model: torch.nn.Module, decay: float):
    """An exponential moving average of ``model``'s weights and buffers (None when ``decay`` is 0)."""
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema decay must be in (0, 1), got {decay}")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _progress(iterable, desc: str, initial: int, total: int):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, initial=initial, total=total, unit="epoch", dynamic_ncols=True)
