"""EAN's iterative teacher-student transfer learning (paper 004, section 3.3), round by round.

Round ``r``: a student EAN starts from the current teacher's weights (weight transfer; a fresh
initialisation with ``weight_transfer: false``, the ablation of Table 6), trains with
:func:`pipeline.training.losses.distillation_loss` (soft labels of the frozen teacher at
temperature T, weight ``alpha``) at learning rate lr2, and is selected on validation accuracy
like any training run. Then the student becomes the teacher of round ``r + 1``. The loop stops
when validation accuracy has not improved for ``patience`` rounds, or after ``max_rounds``; the
best student is kept. With ``co_teachers`` (trained checkpoints of other models, e.g. the probe
EAN learned from) every round learns from the average of the previous round's and their softened
outputs (:class:`pipeline.training.losses.AveragedTeacher`) instead of the previous round's alone.
With a ``transfer`` set (another dataset's faces, e.g. FER2013's for CK+) every round also trains on
``rows`` of them, drawn anew each round, labelled by the teacher alone (Hinton et al.'s transfer
set): the soft term reads every row, the hard term the labelled ones.
Without validation rows (a k-fold run with ``validation_fold=False``) all ``max_rounds`` rounds run
and the last student is kept, as :func:`fit` keeps the last epoch.

Every round is recorded (``rounds.json`` and DVCLive, step = round, round 0 = the teacher) and
has its own resumable directory ``rounds/round-<r>/``: a finished round whose key matches is
reused, so an interrupted distillation continues where it stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core.atomic import write_text
from pipeline.training.checkpoint import build_model, load_model, read_checkpoint, save_checkpoint
from pipeline.shards.dataset import ConcatShards, ShardDataset
from pipeline.training.data import RoleError, SplitData, data_fingerprint, make_loader, with_transform
from pipeline.training.losses import AveragedTeacher, labelled_only, make_loss_fn, mixup_alpha
from pipeline.training.loop import fit, predict_proba, will_resume
from pipeline.training.optim import build_optimizer, build_scheduler
from pipeline.core.device import resolve_device
from pipeline.training.recipe import fingerprint, seed_everything
from pipeline.training.train_model import make_loaders
from pipeline.training.transforms import eval_transform


def should_stop(accuracies: Sequence[float], patience: int, max_rounds: int, min_delta: float = 0.0) -> bool:
    """The stopping rule over ``accuracies`` = [teacher, round 1, round 2, ...] (validation).

    Stop after ``max_rounds`` rounds, or when the last ``patience`` rounds did not beat the best
    accuracy before them by more than ``min_delta``.
    """
    rounds = len(accuracies) - 1
    if rounds >= max_rounds:
        return True
    if rounds < patience:
        return False
    best_before = max(accuracies[: len(accuracies) - patience])
    return all(a <= best_before + min_delta for a in accuracies[-patience:])


@dataclass
class DistillResult:
    """Per-round records and the index of the best round (0 = the teacher itself)."""

    rounds: list[dict[str, Any]] = field(default_factory=list)
    best_round: int = 0


@dataclass
class TransferSet:
    """Faces without usable labels that the rounds learn from through the teacher's soft labels:
    ``faces`` (an unlabelled view), ``per_round`` of them drawn for each round, and the
    ``fingerprint`` of their images, part of every round's key."""

    faces: ShardDataset
    per_round: int
    fingerprint: str

    def draw(self, seed: int, round_index: int) -> ShardDataset:
        """The round's faces: a seeded draw without replacement, in shard order."""
        n = min(self.per_round, len(self.faces))
        picked = np.random.default_rng([seed, round_index]).choice(len(self.faces), size=n, replace=False)
        return self.faces.subset(np.sort(picked))


def load_transfer(root: str | Path, per_round: int) -> TransferSet:
    """The original (not offline-augmented) training rows of the processed dataset at ``root``."""
    faces = ShardDataset(root, split="train", include_augmented=False, size=None)
    return TransferSet(faces.view(unlabelled=True), int(per_round), data_fingerprint(faces))


def _val_accuracy(model: torch.nn.Module, data: SplitData, recipe: dict[str, Any], device) -> float:
    if len(data.validation) == 0:
        return float("nan")
    ds = with_transform(data.validation, int(recipe["input"]["channels"]), eval_transform(recipe))
    probs, labels = predict_proba(model, make_loader(ds, int(recipe["batch_size"]), shuffle=False, device=device),
                                  device)
    return float((probs.argmax(1) == labels).mean())


def _check_classes(path: str | Path, ckpt: dict[str, Any], data: SplitData) -> None:
    if list(ckpt["label_ids"]) != list(data.label_ids):
        raise ValueError(f"{path}: teacher classes {ckpt['label_names']} differ from the data's {data.label_names}")


def distill(teacher_path: str | Path, data: SplitData, settings: dict[str, Any], out_dir: str | Path, *,
            dataset: str, device: str | torch.device | None = "cpu",
            co_teachers: Sequence[str | Path] = (), transfer: TransferSet | None = None) -> DistillResult:
    """Run the rounds from the teacher checkpoint ``teacher_path``; write the best student to
    ``<out_dir>/checkpoint.pt`` and the round records to ``rounds.json`` and ``dvclive/``.
    ``device``: where teacher and students run (as :func:`pipeline.training.train_model.train_model`).
    ``co_teachers``: checkpoints (``settings["co_teachers"]`` resolved by the caller) whose soft labels
    every round averages with the previous round's; they must read the teacher's input.
    ``transfer``: the faces of ``settings["transfer"]`` (:func:`load_transfer`), never a test row."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    teacher_ckpt = read_checkpoint(teacher_path)
    _check_classes(teacher_path, teacher_ckpt, data)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    co = [load_model(p, device) for p in co_teachers]
    for p, (_, ck) in zip(co_teachers, co):
        _check_classes(p, ck, data)
        if ck["recipe"]["input"] != teacher_ckpt["recipe"]["input"]:  # they read the same batches
            raise ValueError(f"{p}: the co-teacher reads input {ck['recipe']['input']}, the rounds "
                             f"{teacher_ckpt['recipe']['input']}")
    fixed = [m.eval() for m, _ in co]
    source_keys = [ck.get("params_hash", "") for _, ck in co]  # what else the rounds learn from
    if transfer is not None:
        leaked = set(transfer.faces.image_ids).intersection(data.test.image_ids)
        if leaked:
            raise RoleError(f"{transfer.faces.root}: {len(leaked)} transfer row(s) are test rows, e.g. "
                            f"{sorted(leaked)[0]}")
        source_keys += [transfer.fingerprint]  # a round's key covers the faces it may draw
    # the student trains on the teacher's input pipeline, with the round settings on top
    recipe = copy.deepcopy(teacher_ckpt["recipe"])
    for key in ("epochs", "batch_size", "optimizer", "scheduler", "seed", "ema"):
        if key in settings:
            recipe[key] = copy.deepcopy(settings[key])
    alpha, temperature = float(settings["alpha"]), float(settings["temperature"])
    mixup = mixup_alpha(recipe)  # the teacher recipe's mixup, if any
    teacher, _ = load_model(teacher_path, device)
    seed_everything(int(recipe.get("seed", 0)))
    result = DistillResult()
    result.rounds.append({"round": 0, "val_acc": _val_accuracy(teacher, data, recipe, device),
                          "source": str(teacher_path)})
    from pipeline.training.live_log import open_live  # here: dvclive takes a second to import

    live = open_live(out_dir, resume=False)
    live.step = 0
    live.log_metric("round/val_acc", result.rounds[0]["val_acc"])
    live.next_step()
    best_state = copy.deepcopy(teacher.state_dict())
    teacher_key = teacher_ckpt.get("params_hash", "")
    while not should_stop([r["val_acc"] for r in result.rounds], int(settings["patience"]),
                          int(settings["max_rounds"]), float(settings.get("min_delta", 0.0))):
        r = len(result.rounds)
        round_dir = out_dir / "rounds" / f"round-{r}"
        key = fingerprint("distill", teacher_key, settings, recipe, data.fingerprint, r, *source_keys)
        done = round_dir / "checkpoint.pt"
        student = build_model(teacher_ckpt["model"], teacher_ckpt["num_classes"], teacher_ckpt["in_chans"],
                              teacher_ckpt["model_args"]).to(device)
        if done.is_file() and read_checkpoint(done).get("params_hash") == key:
            rec = read_checkpoint(done)
            student.load_state_dict(rec["state_dict"])
            val_acc, best_epoch = float(rec["val_acc"]), int(rec["best_epoch"])
        else:
            generator = seed_everything(int(recipe.get("seed", 0)) + r)
            init = build_model(teacher_ckpt["model"], teacher_ckpt["num_classes"], teacher_ckpt["in_chans"],
                               teacher_ckpt["model_args"])
            student.load_state_dict(teacher.state_dict() if settings.get("weight_transfer", True)
                                    else init.state_dict())
            teacher.eval()

            loss_fn = make_loss_fn(F.cross_entropy if transfer is None else labelled_only(F.cross_entropy),
                                   mixup=mixup, alpha=alpha, temperature=temperature,
                                   teacher=AveragedTeacher([teacher, *fixed], temperature) if fixed else teacher)
            round_data = data if transfer is None else dataclasses.replace(
                data, train=ConcatShards([data.train, transfer.draw(int(recipe.get("seed", 0)), r)]))

            optimizer = build_optimizer(recipe["optimizer"], student.parameters())
            scheduler = build_scheduler(recipe.get("scheduler"), optimizer, int(recipe["epochs"]))
            train_loader, val_loader = make_loaders(round_data, recipe, generator, device)
            round_live = open_live(round_dir, resume=will_resume(round_dir, key, int(recipe["epochs"])))
            fit_result = fit(student, loss_fn, optimizer, scheduler, train_loader, val_loader,
                             epochs=int(recipe["epochs"]), device=device, run_dir=round_dir, run_key=key,
                             generator=generator, live=round_live, desc=f"distill {dataset} round {r}",
                             channels_last=bool(recipe.get("channels_last", False)),
                             ema_decay=float(recipe.get("ema", 0)), amp=recipe.get("amp", "off"))
            round_live.end()
            student.load_state_dict(fit_result.best_state)
            val_acc, best_epoch = fit_result.best_val_acc, fit_result.best_epoch
            meta = {k: v for k, v in teacher_ckpt.items() if k != "state_dict"}
            save_checkpoint(done, student, **{**meta, "params_hash": key, "val_acc": val_acc,
                                              "best_epoch": best_epoch, "round": r})
            (round_dir / "last.pt").unlink(missing_ok=True)
        result.rounds.append({"round": r, "val_acc": val_acc, "best_epoch": best_epoch})
        live.step = r
        live.log_metric("round/val_acc", val_acc)
        live.next_step()
        if math.isnan(val_acc) or val_acc > max(x["val_acc"] for x in result.rounds[:-1]):  # no validation: last
            result.best_round, best_state = r, copy.deepcopy(student.state_dict())
        teacher = student.eval()  # the student is the next round's teacher
    final = build_model(teacher_ckpt["model"], teacher_ckpt["num_classes"], teacher_ckpt["in_chans"],
                        teacher_ckpt["model_args"])
    final.load_state_dict(best_state)
    meta = {k: v for k, v in teacher_ckpt.items() if k != "state_dict"}
    meta.update({"run_model": f"{meta.get('run_model', meta['model'])}_distilled",
                 "params_hash": fingerprint("distilled", teacher_key, settings, data.fingerprint, *source_keys),
                 "teacher": str(teacher_path), "co_teachers": [str(p) for p in co_teachers], "distill": settings, "rounds": result.rounds,
                 "best_round": result.best_round, "val_acc": result.rounds[result.best_round]["val_acc"]})
    save_checkpoint(out_dir / "checkpoint.pt", final, **meta)
    write_text(out_dir / "rounds.json", _json({"rounds": result.rounds, "best_round": result.best_round,
                                                "alpha": alpha, "temperature": temperature}))
    live.summary.update({"best": {"round": result.best_round, "val_acc": meta["val_acc"]},
                         "teacher": {"val_acc": result.rounds[0]["val_acc"]}, "rounds": len(result.rounds) - 1})
    live.end()
    return result


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2) + "\n"
