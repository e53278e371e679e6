"""Train one model on one dataset's rows: the work of ``fer-pipeline train``.

Writes ``<out_dir>/checkpoint.pt`` (the selected weights, see ``checkpoint``) and
``<out_dir>/dvclive/`` (per-epoch history as plots, final metrics in ``metrics.json``), and
``last.pt`` during training, removed once the checkpoint is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.training.checkpoint import build_model, load_model, load_pretrained, read_checkpoint, save_checkpoint
from pipeline.training.data import SplitData, make_loader, with_transform
from pipeline.training.losses import build_criterion, make_loss_fn, mixup_alpha
from pipeline.training.loop import FitResult, fit, will_resume
from pipeline.training.optim import build_optimizer, build_scheduler
from pipeline.core.device import resolve_device
from pipeline.training.recipe import fingerprint, init_of, seed_everything
from pipeline.training.transforms import eval_transform, train_transform
from pipeline.training.weights import ensure_weights, weights_key


def make_loaders(data: SplitData, recipe: dict[str, Any], generator: torch.Generator, device=None):
    """Training loader (augmented, shuffled by ``generator``) and validation loader (plain), their
    batches in pinned memory when they go to a CUDA ``device``."""
    channels = int(recipe["input"]["channels"])
    train_ds = with_transform(data.train, channels, train_transform(recipe))
    val_ds = with_transform(data.validation, channels, eval_transform(recipe))
    bs = int(recipe["batch_size"])
    workers = int(recipe.get("num_workers", 0))
    return (make_loader(train_ds, bs, shuffle=True, generator=generator, num_workers=workers, device=device),
            make_loader(val_ds, bs, shuffle=False, num_workers=workers, device=device))


def _teacher(recipe: dict[str, Any], teacher_path: str | Path | None, data: SplitData, device):
    """The frozen teacher of a recipe with ``teacher`` (None without), and its run key."""
    spec = recipe.get("teacher")
    if not spec:
        return None, None
    if teacher_path is None or not Path(teacher_path).is_file():
        raise FileNotFoundError(f"recipe teacher {spec.get('model')!r}: no trained checkpoint at {teacher_path}")
    ckpt = read_checkpoint(teacher_path)
    if list(ckpt["label_ids"]) != list(data.label_ids):
        raise ValueError(f"{teacher_path}: teacher classes {ckpt['label_names']} differ from the data's "
                         f"{data.label_names}")
    if ckpt["recipe"]["input"] != recipe["input"]:
        raise ValueError(f"{teacher_path}: the teacher reads input {ckpt['recipe']['input']}, the student "
                         f"{recipe['input']}; they must see the same batches")
    teacher, _ = load_model(teacher_path, device)
    if recipe.get("channels_last", False):  # the layout of the batches it reads: no conversion per step
        teacher.to(memory_format=torch.channels_last)
    return teacher.eval(), ckpt.get("params_hash", "")


def train_model(data: SplitData, model_name: str, recipe: dict[str, Any], out_dir: str | Path, *,
                dataset: str, stop_after_epoch: int | None = None,
                teacher_path: str | Path | None = None,
                pretrained_path: str | Path | None = None,
                device: str | torch.device | None = "cpu") -> tuple[FitResult, dict[str, Any]]:
    """Train ``model_name`` by ``recipe`` on ``data``; write checkpoint and DVCLive logs to ``out_dir``.

    ``model_name`` names the recipe; the network is ``recipe["arch"]`` when given (an ablation
    variant such as ``ean_noatt`` = ``arch: ean`` + ``model_args: {attention: false}``), else
    ``model_name`` itself.

    A recipe with ``teacher: {model, alpha, temperature}`` learns from the soft labels of the
    trained teacher checkpoint ``teacher_path`` too: :func:`pipeline.training.losses.distillation_loss`
    with the recipe's own loss as the hard term (``alpha`` weighs the soft term, T = ``temperature``),
    on the same augmented and mixed batch the student sees; the teacher must read the same
    ``input``. Knowledge from another architecture, e.g. the pretrained ``onet_probe``.

    A recipe with ``init: pretrained`` starts from the weights at ``pretrained_path``, learned by
    stage ``pretrain`` for this recipe on synthetic faces (:mod:`pipeline.training.pretraining`).
    A recipe with ``weights: <file>`` starts from that state dict (e.g. DFNet's ImageNet ResNet50,
    :mod:`pipeline.training.weights`); the checkpoint holds every weight, never needing the file.

    ``device``: where it trains (``auto``/None: CUDA when present; stages pass ``params.yaml``'s
    ``device`` or ``--device``, :func:`pipeline.core.device.resolve_device`).

    Returns the fit result and the checkpoint metadata written.
    """
    if len(data.train) == 0:
        raise ValueError(f"{dataset}: no training rows")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    model_args = dict(recipe.get("model_args") or {})
    if "pretrained_path" in model_args:
        raise ValueError(f"train.{model_name}.model_args.pretrained_path: moved to train.{model_name}.weights")
    if init_of(recipe) == "pretrained" and recipe.get("weights"):
        raise ValueError(f"train.{model_name}: init: pretrained and weights are two starting points; set one")
    weights = ensure_weights(recipe, model_name)  # before seeding: fetching must not move any RNG
    seed = int(recipe.get("seed", 0))
    generator = seed_everything(seed, bool(recipe.get("deterministic", True)))
    channels = int(recipe["input"]["channels"])
    arch = recipe.get("arch") or model_name
    model = build_model(arch, len(data.label_ids), channels, model_args, weights=weights)
    init_key, init_info = (load_pretrained(model, pretrained_path, arch=arch, model_args=model_args,
                                           in_chans=channels, label_ids=data.label_ids)
                           if init_of(recipe) == "pretrained" else (None, None))
    model = model.to(device)
    criterion = build_criterion(recipe, model)
    if isinstance(criterion, torch.nn.Module):
        criterion = criterion.to(device)

    mixup = mixup_alpha(recipe)
    teacher, teacher_key = _teacher(recipe, teacher_path, data, device)

    spec = recipe.get("teacher") or {}
    loss_fn = make_loss_fn(criterion, mixup=mixup, teacher=teacher, alpha=float(spec.get("alpha", 0.0)),
                           temperature=float(spec.get("temperature", 1.0)))

    optimizer = build_optimizer(recipe["optimizer"], list(model.parameters()) + list(
        criterion.parameters() if isinstance(criterion, torch.nn.Module) else []))
    epochs = int(recipe["epochs"])
    scheduler = build_scheduler(recipe.get("scheduler"), optimizer, epochs)
    train_loader, val_loader = make_loaders(data, recipe, generator, device)
    weights_hash = weights_key(weights)
    run_key = fingerprint(model_name, dataset, data.fold, recipe, data.fingerprint,
                          *([teacher_key] if teacher is not None else []), *([init_key] if init_key is not None else []),
                          *([weights_hash] if weights_hash is not None else []))
    from pipeline.training.live_log import open_live  # here: dvclive takes a second to import

    live = open_live(out_dir, resume=will_resume(out_dir, run_key, epochs))
    result = fit(model, loss_fn, optimizer, scheduler, train_loader, val_loader, epochs=epochs, device=device,
                 run_dir=out_dir, run_key=run_key, generator=generator, live=live,
                 desc=f"train {model_name}-{dataset}", stop_after_epoch=stop_after_epoch,
                 channels_last=bool(recipe.get("channels_last", False)), ema_decay=float(recipe.get("ema", 0)),
                 amp=recipe.get("amp", "off"))
    model.load_state_dict(result.best_state)
    meta = {"model": arch, "run_model": model_name, "model_args": model_args, "num_classes": len(data.label_ids),
            "in_chans": channels, "recipe": recipe, "label_names": data.label_names,
            "label_ids": data.label_ids, "params_hash": run_key, "dataset": dataset, "fold": data.fold,
            "best_epoch": result.best_epoch, "val_acc": result.best_val_acc,
            "n_train": len(data.train), "n_validation": len(data.validation),
            **({"teacher": str(teacher_path)} if teacher is not None else {}),
            **({"pretrained": {"path": str(pretrained_path), **init_info}} if init_key is not None else {}),
            **({"weights": {"path": str(weights), "sha256_16": weights_hash}} if weights is not None else {})}
    save_checkpoint(out_dir / "checkpoint.pt", model, **meta)
    live.summary.update({"best": {"val_acc": result.best_val_acc, "epoch": result.best_epoch},
                         "epochs": epochs, "n_train": len(data.train), "n_validation": len(data.validation)})
    live.end()
    (out_dir / "last.pt").unlink(missing_ok=True)
    return result, meta
