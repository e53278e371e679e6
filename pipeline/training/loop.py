"""The epoch loop shared by ``train`` and every ``distill`` round.

:func:`fit` trains for a number of epochs, validates after each, keeps the weights of the best
validation epoch (model selection), logs per-epoch history with DVCLive, shows a tqdm bar, and
writes ``last.pt`` atomically after every epoch. When ``last.pt`` of the same run key exists (same
recipe, data and seed: see ``recipe.fingerprint``) and is not finished, :func:`fit` resumes from it,
restoring weights, optimizer, scheduler, RNG and shuffling state, so an interrupted run ends
with the same weights as an uninterrupted one.

Speed (``bench/train_speed.py --loop``, docs/bench.md), none of it changing a result: batches go to
the device without blocking and the epoch's loss and accuracy are summed on the device, so a CUDA
step never waits for the host; while training, freed memory stays in the process
(:func:`keep_freed_memory`), so every step's activations do not page-fault afresh, and
deterministic mode does not fill every new tensor with NaN first (:func:`fit`). The recipe's
``amp`` (mixed precision, :func:`amp_dtype`) is opt-in: it changes the rounding.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.core.atomic import atomic_path
from pipeline.shards.dataset import UNLABELLED
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
                 memory_format: torch.memory_format = torch.contiguous_format, ema=None, *,
                 amp: torch.dtype | None = None, scaler=None) -> tuple[float, float]:
    """One pass over ``loader``: the mean training loss and accuracy.

    ``amp``: the autocast dtype of forward and loss (None: float32); ``scaler``: a GradScaler (fp16).
    """
    model.train()
    total = 0
    # summed on the device (float64: the same sums as adding Python floats) and read once an epoch,
    # so a CUDA step queues behind the last instead of waiting for it
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    labelled = torch.zeros((), dtype=torch.int64, device=device)  # rows with a label: the accuracy's base
    each_step = device.type == "cpu"  # checking every step's loss costs a wait on a GPU, nothing here
    for x, y in loader:
        x = x.to(device, memory_format=memory_format, non_blocking=True)
        y = y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
            loss, logits = loss_fn(model, x, y)
        if each_step and not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} (lower the learning rate?)")
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        loss_sum += loss.detach().double() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()  # an UNLABELLED row (-100) is never correct
        labelled += (y != UNLABELLED).sum()
        total += len(y)
    mean_loss = float(loss_sum) / max(total, 1)
    if not math.isfinite(mean_loss):
        raise FloatingPointError(f"training loss became {mean_loss} (lower the learning rate?)")
    return mean_loss, int(correct) / max(int(labelled), 1)


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
        stop_after_epoch: int | None = None, channels_last: bool = False, ema_decay: float = 0.0,
        amp: str | bool | None = "off") -> FitResult:
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
        amp: the recipe's ``amp``: ``off``, ``bf16`` or ``fp16`` autocast of the training forward
            and loss (:func:`amp_dtype`; fp16 with a GradScaler, whose state ``last.pt`` keeps).
            Validation runs in float32.

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
    dtype = amp_dtype(amp, device)
    scaler = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None
    if will_resume(run_dir, run_key, epochs):
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        best = state["best"]
        history = state["history"]
        start = state["epoch"]
        set_rng_state(state["rng"])
        generator.set_state(state["generator"])
    keep_freed_memory()  # every step allocates the same blocks again: keep them
    # deterministic mode fills every new tensor with NaN, to expose reads of uninitialised memory: a
    # memory pass per tensor, a fifth of an EAN step on 2 cores; training reads none (the same bits)
    torch.utils.deterministic.fill_uninitialized_memory = False
    bar = _progress(range(start, epochs), desc, initial=start, total=epochs)
    for epoch in bar:
        started = time.perf_counter()
        train_loss, train_acc = _train_epoch(model, train_loader, loss_fn, optimizer, device, memory_format, ema,
                                             amp=dtype, scaler=scaler)
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
                    "generator": generator.get_state(),
                    "scaler": scaler.state_dict() if scaler is not None else None}, last_path)
        bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.3f}", best=f"{best['acc']:.3f}")
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < epochs:
            raise KeyboardInterrupt(f"stopped after epoch {epoch + 1} (stop_after_epoch)")
    release_freed_memory()
    return FitResult(best_state=best["state"], best_epoch=best["epoch"], best_val_acc=float(best["acc"]),
                     history=history, resumed_from=start)


#: a recipe's ``amp`` values (YAML reads a bare ``off`` as False, which means ``off`` too)
AMP_MODES = ("off", "bf16", "fp16")


def amp_mode(amp: str | bool | None) -> str:
    """A recipe's ``amp`` as one of :data:`AMP_MODES` (``off`` for None or False)."""
    mode = "off" if amp in (None, False) else amp
    if mode not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    return mode


def amp_dtype(amp: str | bool | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a recipe's ``amp`` on ``device`` (None: float32).

    ``fp16`` and ``bf16`` on CUDA (bf16 where the GPU has it); on the CPU only ``bf16``, where the
    CPU has bf16 instructions (oneDNN's check: AVX512-BF16 or AMX). Anything else is ignored with a
    one-line notice on stderr, and the run trains in float32.
    """
    mode = amp_mode(amp)
    if mode == "off":
        return None
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    if device.type == "cuda" and (mode == "fp16" or torch.cuda.is_bf16_supported()):
        return dtype
    if device.type == "cpu" and mode == "bf16" and cpu_bf16_supported():
        return dtype
    why = "needs CUDA" if mode == "fp16" else f"is not supported on this {device.type}"
    print(f"amp: {mode} {why}; training in float32 on {device}", file=sys.stderr, flush=True)
    return None


def cpu_bf16_supported() -> bool:
    """Whether this CPU computes bf16 natively (oneDNN's check: AVX512-BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> None:
    """From now on this process keeps the memory it frees for its next allocations (glibc malloc).

    By default glibc hands every large block (a batch's activations and gradients, many MB each)
    back to the kernel when it is freed, so the next step page-faults it in afresh: about 80,000
    page faults per EAN step at batch 128, a large part of the step on 2 cores (docs/bench.md).
    Here blocks come from the heap and stay there (``M_MMAP_MAX`` 0, a 1 GiB trim threshold): a
    training process keeps about its peak memory, as with jemalloc or tcmalloc;
    :func:`release_freed_memory` gives back what is free. It changes no result. Elsewhere (macOS,
    musl) it does nothing.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def release_freed_memory() -> None:
    """Give the free memory of the heap back to the kernel (``malloc_trim``; glibc only)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _glibc():
    """The C library when it is glibc (has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError):
        return None


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
