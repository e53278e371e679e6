"""Subject-independent k-fold cross-validation of models on one k-fold dataset: the work of ``fer-pipeline cv``.

For every fold ``f`` of the shards under ``data/processed/<dataset>/`` (``split.<dataset>.protocol:
kfold``) and every model of ``cv.<dataset>.models``: train by the model's own recipe
(``train.<model>``, :func:`pipeline.training.train_model.train_model`), optionally run EAN's
iterative distillation from that trained EAN (``distill.<dataset>`` settings,
:func:`pipeline.training.distill_rounds.distill`), and score the fold's test subjects, who took no
part in training or selection. Each fold's subject independence is asserted on the very rows used
(:func:`assert_fold_independent`) before anything trains.

Reported per model: the mean ± standard deviation of the per-fold test accuracies (ten-crop when
``ten_crop``, the number of record; centre-crop alongside), the pooled confusion matrix and
per-class recall over all folds' test images, parameters and wall time. No fold ensembles: a
fold's model only ever sees its own test fold.

Runs are resumable: a fold whose ``scores.json`` exists under ``models/cv/<dataset>/<model>-fold<f>/``
with the same run key (recipe + data) is reused.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from pipeline.core.atomic import write_text
from pipeline.evaluation.cv_table import duration, results_table
from pipeline.training.runs import DISTILLED


@dataclass
class FoldScore:
    """One model's result on one test fold."""

    fold: int
    accuracy: float
    centre_accuracy: float
    y_true: list[int]
    y_pred: list[int]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def shard_rows(root: str | Path) -> pd.DataFrame:
    """``subject``, ``fold``, ``split``, ``parent_id`` and ``label_name`` of every shard row under ``root``."""
    import pyarrow.parquet as pq

    from pipeline.shards.format import shard_files

    cols = ["subject", "fold", "split", "parent_id", "label_name"]
    files = shard_files(root)
    if not files:
        raise FileNotFoundError(f"{root}: no shards (run `fer-pipeline shard` first)")
    return pd.concat([pq.read_table(p, columns=cols).to_pandas() for p in files], ignore_index=True)


def fold_roles(rows: pd.DataFrame, fold: int, validation_fold: bool) -> dict[str, pd.DataFrame]:
    """The rows of each role of a fold run, by the rule :func:`pipeline.training.data.load_split_data` follows."""
    from pipeline.training.data import validation_fold_of

    v = validation_fold_of(fold, int(rows["fold"].max()) + 1, validation_fold)
    original = rows["parent_id"].isna()
    test = rows[(rows["fold"] == fold) & original]
    val = rows.iloc[0:0] if v is None else rows[(rows["fold"] == v) & original]
    train = rows[(rows["fold"] != fold) & (rows["fold"] != v)]
    return {"train": train, "validation": val, "test": test}


def assert_fold_independent(rows: pd.DataFrame, fold: int, validation_fold: bool, name: str = "dataset") -> None:
    """Raise ``SplitError`` unless the fold's train, validation and test rows share no subject.

    Every row must carry a subject: a subject-less row could hide a person on both sides.
    """
    from pipeline.shard.splits import SplitError

    if rows["subject"].isna().any():
        raise SplitError(f"{name}: {int(rows['subject'].isna().sum())} rows without a subject; "
                         "subject-independent folds need one on every row")
    roles = fold_roles(rows, fold, validation_fold)
    subjects = {role: set(df["subject"].astype(str)) for role, df in roles.items()}
    if not subjects["test"]:
        raise SplitError(f"{name}: fold {fold} has no test rows")
    for a, b in (("train", "test"), ("train", "validation"), ("validation", "test")):
        shared = subjects[a] & subjects[b]
        if shared:
            raise SplitError(f"{name}: fold {fold}: subjects in both {a} and {b}: {sorted(shared)[:10]}")


def _score(checkpoint: Path, data, ten_crop: bool, device: str = "cpu") -> tuple[float, float, np.ndarray, np.ndarray]:
    """(reported accuracy, centre-crop accuracy, y_true, y_pred) of ``checkpoint`` on ``data.test``,
    scored on ``device``."""
    from pipeline.evaluation.scoring import score
    from pipeline.training.checkpoint import load_model

    model, ckpt = load_model(checkpoint, device)
    s = score(model, ckpt, data.test, ten_crop=ten_crop, device=device)
    return s.accuracy(), s.accuracy(s.centre), s.y_true, s.reported.argmax(1)


def _cached(run_dir: Path, key: str) -> FoldScore | None:
    path = run_dir / "scores.json"
    if not path.is_file():
        return None
    rec = json.loads(path.read_text())
    if rec.get("key") != key:
        return None
    return FoldScore(**{k: v for k, v in rec.items() if k != "key"})


def _save(run_dir: Path, key: str, score: FoldScore) -> None:
    write_text(run_dir / "scores.json", json.dumps({"key": key, **score.__dict__}) + "\n")


def run_fold(data, model: str, recipe: dict[str, Any], run_dir: Path, *, dataset: str,
             ten_crop: bool, teacher_dir: Path | None = None, pretrained_dir: Path | None = None,
             device: str = "cpu") -> FoldScore:
    """Train ``model`` on one fold's ``data`` (or reuse a finished run) and score its test rows;
    a recipe with a ``teacher`` learns from the fold's trained teacher in ``teacher_dir`` too, one
    with ``init: pretrained`` starts from ``pretrained_dir/<model>/checkpoint.pt``, one with
    ``weights`` from that file. Trains and scores on ``device``; which one is not part of the run key
    (a fold finished on one machine is reused on another)."""
    from pipeline.training.checkpoint import read_checkpoint
    from pipeline.training.recipe import init_of
    from pipeline.training.recipe import fingerprint
    from pipeline.training.train_model import train_model
    from pipeline.training.weights import weights_key, weights_of

    teacher_path = teacher_dir / "checkpoint.pt" if teacher_dir is not None else None
    teacher_key = [read_checkpoint(teacher_path).get("params_hash")] if teacher_path is not None else []
    pretrained_path = (Path(pretrained_dir) / model / "checkpoint.pt"
                       if init_of(recipe) == "pretrained" and pretrained_dir is not None else None)
    init_key = [read_checkpoint(pretrained_path).get("params_hash")] if pretrained_path is not None else []
    weights = weights_of(recipe)
    weights_hash = [weights_key(weights)] if weights is not None and weights.is_file() else []
    key = fingerprint("cv", model, recipe, data.fingerprint, ten_crop, *teacher_key, *init_key, *weights_hash)
    cached = _cached(run_dir, key)
    if cached is not None:
        return cached
    t0 = time.perf_counter()
    train_model(data, model, recipe, run_dir, dataset=dataset, teacher_path=teacher_path,
                pretrained_path=pretrained_path, device=device)
    acc, centre, y, pred = _score(run_dir / "checkpoint.pt", data, ten_crop, device)
    score = FoldScore(data.fold, acc, centre, y.tolist(), pred.tolist(), time.perf_counter() - t0)
    _save(run_dir, key, score)
    return score


def distill_fold(data, teacher_dir: Path, settings: dict[str, Any], run_dir: Path, *, dataset: str,
                 ten_crop: bool, device: str = "cpu", co_teacher_dirs: Sequence[Path] = (),
                 transfer=None) -> FoldScore:
    """EAN's distillation rounds from the fold's trained teacher (or a finished run), scored on the test
    rows; ``co_teacher_dirs``: the fold's runs of ``settings["co_teachers"]``; ``transfer``: the faces of
    ``settings["transfer"]`` (:func:`pipeline.training.distill_rounds.load_transfer`, loaded once per run)."""
    from pipeline.training.checkpoint import read_checkpoint
    from pipeline.training.distill_rounds import distill
    from pipeline.training.recipe import fingerprint

    co_teachers = [d / "checkpoint.pt" for d in co_teacher_dirs]
    keys = [read_checkpoint(p).get("params_hash") for p in [teacher_dir / "checkpoint.pt", *co_teachers]]
    if transfer is not None:
        keys.append(transfer.fingerprint)
    key = fingerprint("cv-distill", keys[0], settings, data.fingerprint, ten_crop, *keys[1:])
    cached = _cached(run_dir, key)
    if cached is not None:
        return cached
    t0 = time.perf_counter()
    result = distill(teacher_dir / "checkpoint.pt", data, settings, run_dir, dataset=dataset, device=device,
                     co_teachers=co_teachers, transfer=transfer)
    acc, centre, y, pred = _score(run_dir / "checkpoint.pt", data, ten_crop, device)
    score = FoldScore(data.fold, acc, centre, y.tolist(), pred.tolist(), time.perf_counter() - t0,
                      {"best_round": result.best_round, "rounds": len(result.rounds) - 1})
    _save(run_dir, key, score)
    return score


def summarize(name: str, scores: Sequence[FoldScore], label_names: Sequence[str], params: int,
              extra_seconds: float = 0.0) -> dict[str, Any]:
    """Mean ± std (population, over folds) of the accuracies; pooled metrics over all test images."""
    from pipeline.evaluation.metrics import classification_metrics

    accs = np.array([s.accuracy for s in scores])
    centre = np.array([s.centre_accuracy for s in scores])
    y = np.concatenate([s.y_true for s in scores]).astype(int)
    p = np.concatenate([s.y_pred for s in scores]).astype(int)
    pooled = classification_metrics(y, p, list(label_names))
    return {"model": name, "params": int(params), "folds": [s.fold for s in scores],
            "accuracy_per_fold": accs.round(6).tolist(), "mean": float(accs.mean()), "std": float(accs.std()),
            "centre_mean": float(centre.mean()), "centre_std": float(centre.std()),
            "pooled": pooled, "recall": {c: v["recall"] for c, v in pooled["per_class"].items()},
            "seconds": float(sum(s.seconds for s in scores) + extra_seconds),
            "fold_extra": [s.extra for s in scores]}


def _fold_job(data_root: Path, dataset: str, fold: int, models: list[str], recipes: dict[str, dict[str, Any]],
              teacher: str | None, distill_settings: dict[str, Any], validation_fold: bool, ten_crop: bool,
              models_dir: Path, threads: int | None = None, pretrained_dir: Path | None = None,
              device: str = "cpu", transfer=None) -> dict[str, Any]:
    """Everything of one fold, on ``device``: every model trained and scored, and the distilled EAN from
    the ``teacher`` model's run (None: no distillation).

    ``transfer``: the rounds' transfer set, loaded once by :func:`cross_validate` (None without).
    A top-level function so that a worker process can run it (``cv.workers``); ``threads`` sets
    that process's torch threads. Returns the fold's scores, parameter counts and class names.
    """
    from pipeline.evaluation.complexity import count_params
    from pipeline.training.checkpoint import load_model
    from pipeline.training.data import load_split_data
    from pipeline.training.recipe import teacher_of

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    by_derived: dict[bool, Any] = {}
    scores: dict[str, FoldScore] = {}
    n_params: dict[str, int] = {}
    label_names: list[str] = []
    for m in models:
        derived = bool(recipes[m].get("derived_rows", True))  # a recipe may skip offline-augmented rows
        if derived not in by_derived:
            by_derived[derived] = load_split_data(data_root, fold, validation_fold=validation_fold,
                                                  derived_rows=derived)
        data = by_derived[derived]
        label_names = data.label_names
        run_dir = models_dir / f"{m}-fold{fold}"
        recipe_teacher = teacher_of(recipes[m])
        scores[m] = run_fold(data, m, recipes[m], run_dir, dataset=dataset, ten_crop=ten_crop,
                             teacher_dir=models_dir / f"{recipe_teacher}-fold{fold}" if recipe_teacher else None,
                             pretrained_dir=pretrained_dir, device=device)
        n_params[m] = count_params(load_model(run_dir / "checkpoint.pt")[0])
    if teacher is not None:  # after every model of the fold: its co-teachers are among them
        co_teachers = [models_dir / f"{c}-fold{fold}" for c in distill_settings.get("co_teachers", [])]
        scores[DISTILLED] = distill_fold(by_derived[bool(recipes[teacher].get("derived_rows", True))],
                                         models_dir / f"{teacher}-fold{fold}", distill_settings,
                                         models_dir / f"{DISTILLED}-fold{fold}", dataset=dataset, ten_crop=ten_crop,
                                         device=device, co_teacher_dirs=co_teachers,
                                         transfer=transfer)
        n_params[DISTILLED] = n_params[teacher]
    return {"fold": fold, "scores": scores, "n_params": n_params, "label_names": label_names}


def _fold_lines(dataset: str, k: int, job: dict[str, Any]) -> list[str]:
    lines = []
    for name, s in job["scores"].items():
        rounds = f", rounds {s.extra.get('rounds')}" if name == DISTILLED else ""
        lines.append(f"{dataset} fold {job['fold']}/{k}: {name} {s.accuracy:.4f} (centre {s.centre_accuracy:.4f}) "
                     f"{s.seconds:.0f}s{rounds}")
    return lines


def _run_jobs(jobs: list[dict[str, Any]], k: int, workers: int, log) -> list[dict[str, Any]]:
    """Run the fold jobs inline (``workers`` 1) or in ``workers`` spawned processes, one torch thread
    share each; results come back in fold order whatever order they finish in."""
    if workers <= 1 or len(jobs) <= 1:
        done = []
        for job in jobs:
            done.append(_fold_job(**job))
            for line in _fold_lines(job["dataset"], k, done[-1]):
                log(line)
        return done
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers = min(workers, len(jobs))
    threads = max(1, (os.cpu_count() or 1) // workers)
    results: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_fold_job, **{**job, "threads": threads}): job for job in jobs}
        for fut in as_completed(futures):
            job = futures[fut]
            results[job["fold"]] = fut.result()
            for line in _fold_lines(job["dataset"], k, results[job["fold"]]):
                log(line)
    return [results[job["fold"]] for job in jobs]


def _load_transfer(transfer: dict[str, Any] | None, data_root: Path, dataset: str):
    """The faces of ``distill.<dataset>.transfer`` (None without), read and fingerprinted once for
    every fold; refused in one line naming the key when the source is the dataset itself (its test
    folds would train) or has no shards beside the dataset's."""
    from pipeline.core.schema import ParamsError
    from pipeline.shards.format import shard_files
    from pipeline.training.distill_rounds import load_transfer

    if not transfer:
        return None
    source = transfer["source"]
    if source == dataset:
        raise ParamsError(f"distill.{dataset}.transfer.source: {source!r} is the distilled dataset; its test "
                          f"folds would train (name another processed dataset, e.g. fer2013)")
    root = data_root.parent / source
    if not root.is_dir() or not shard_files(root, "train"):
        raise ParamsError(f"distill.{dataset}.transfer.source: no training shards of {source!r} in "
                          f"{root} (add it to `datasets` and run its data stages)")
    return load_transfer(root, transfer["rows"])


def _with_teachers(models: Sequence[str], recipe_of) -> list[str]:
    """``models`` in order, each preceded by its recipe's teacher (and that one's) unless listed earlier:
    a fold job trains a student after the teacher it learns from."""
    from pipeline.training.recipe import teacher_of

    order: list[str] = []

    def add(m: str, chain: tuple[str, ...]) -> None:
        if m in chain:
            raise ValueError(f"train.{m}.teacher: a cycle of teachers {' -> '.join(chain + (m,))}")
        if m in order:
            return
        t = teacher_of(recipe_of(m))
        if t:
            add(t, chain + (m,))
        order.append(m)

    for m in models:
        add(m, ())
    return order


def cross_validate(data_root: str | Path, dataset: str, settings: dict[str, Any], models_dir: str | Path,
                   params_file: str | None = None, log=print, pretrained_dir: str | Path | None = None,
                   device: str = "cpu") -> dict[str, Any]:
    """Run the protocol on ``data_root`` (the dataset's shards) for ``settings`` (``cv`` params).

    ``settings``: ``models`` (train recipes; a recipe's ``teacher`` is trained first in each fold,
    added when not listed), ``distill`` (bool: also the distilled EAN),
    ``validation_fold`` (bool), ``ten_crop`` (bool), ``folds`` (``all`` or a list of indices),
    ``workers`` (folds trained at once, each in its own process with an equal share of the
    cores; 1 = one after the other in this process). A fold's result does not depend on which
    worker ran it (every run is seeded) beyond the last bits of float sums: torch's thread count
    can change their order. A recipe with ``init: pretrained`` starts every fold from
    ``pretrained_dir/<model>/checkpoint.pt`` (stage ``pretrain``); one with ``weights`` from that file
    (fetched, or refused in one line, before any fold trains). ``device`` (a name such as ``cuda:0``:
    it travels to worker processes) is where every fold trains and scores.
    Returns ``{"dataset", "k", "folds", "settings", "classes", "models": {name: summary}}``.
    """
    from pipeline.core.schema import ParamsError
    from pipeline.shard.splits import assert_subject_independent
    from pipeline.training.data import fold_count
    from pipeline.training.recipe import init_of
    from pipeline.training.recipe import for_dataset, load_recipe

    t0 = time.perf_counter()
    data_root, models_dir = Path(data_root), Path(models_dir)
    k = fold_count(data_root)
    if k < 2:
        raise ValueError(f"{data_root}: not k-fold shards (set split.{dataset}.protocol: kfold, k >= 2)")
    validation_fold = bool(settings.get("validation_fold", False))
    ten_crop = bool(settings.get("ten_crop", True))
    folds = list(range(k)) if settings.get("folds", "all") == "all" else [int(f) for f in settings["folds"]]
    if any(not 0 <= f < k for f in folds):
        raise ValueError(f"cv.folds {folds}: out of range 0..{k - 1}")
    models = list(settings.get("models") or [])
    do_distill = bool(settings.get("distill", False))
    distill_settings = load_recipe("distill", dataset, params_file) if do_distill else {}
    teacher = distill_settings.get("teacher", "ean")
    if do_distill and teacher not in models:
        raise ValueError(f"cv.distill needs its teacher {teacher!r} among cv.models {models}")
    recipes: dict[str, dict[str, Any]] = {}
    models = _with_teachers(models, lambda m: recipes.setdefault(
        m, for_dataset(load_recipe("train", m, params_file), dataset)))
    absent = [c for c in distill_settings.get("co_teachers", []) if c not in models]
    if absent:
        raise ParamsError(f"distill.{dataset}.co_teachers: {absent[0]!r} is not trained in the folds "
                          f"(cv models: {', '.join(models)})")
    transfer = _load_transfer(distill_settings.get("transfer"), data_root, dataset)

    missing = [m for m in models if init_of(recipes[m]) == "pretrained"
               and (pretrained_dir is None or not (Path(pretrained_dir) / m / "checkpoint.pt").is_file())]
    if missing:  # before any fold trains
        raise FileNotFoundError(f"train.{missing[0]}.init: pretrained, but no checkpoint {missing[0]}/checkpoint.pt "
                                f"in {pretrained_dir} (list it in pretrain.models and run `fer-pipeline pretrain`)")
    from pipeline.training.weights import ensure_weights

    for m in models:
        ensure_weights(recipes[m], m, log)
    rows = shard_rows(data_root)
    assert_subject_independent(rows, dataset)
    for f in folds:
        assert_fold_independent(rows, f, validation_fold, dataset)
    jobs = [{"data_root": data_root, "dataset": dataset, "fold": f, "models": models, "recipes": recipes,
             "teacher": teacher if do_distill else None, "distill_settings": distill_settings,
             "validation_fold": validation_fold, "ten_crop": ten_crop, "models_dir": models_dir,
             "pretrained_dir": pretrained_dir, "device": str(device), "transfer": transfer} for f in folds]
    done = _run_jobs(jobs, k, int(settings.get("workers", 1)), log)
    order = [x for m in models for x in ([m, DISTILLED] if do_distill and m == teacher else [m])]
    label_names = done[-1]["label_names"]
    summaries = {}
    for name in order:
        scores = [job["scores"][name] for job in done]
        # the distilled EAN's time includes its teacher's training: the cost of getting it
        extra = sum(job["scores"][teacher].seconds for job in done) if name == DISTILLED else 0.0
        summaries[name] = summarize(name, scores, label_names, done[-1]["n_params"][name], extra)
    return {"dataset": dataset, "k": k, "folds": folds, "classes": label_names,
            "settings": {**settings, "validation_fold": validation_fold, "ten_crop": ten_crop},
            "distill": distill_settings, "models": summaries, "wall_seconds": time.perf_counter() - t0}


def write_outputs(result: dict[str, Any], out_dir: str | Path) -> None:
    """``metrics.json`` (everything), ``results.md`` (the table) and a pooled confusion PNG per model."""
    from pipeline.evaluation.evaluate import save_confusion_png

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "metrics.json", json.dumps(result, indent=2, default=str) + "\n")
    k, n = result["k"], len(result["folds"])
    write_text(out_dir / "results.md",
               f"# {result['dataset']}: subject-independent {k}-fold cross-validation ({n} folds run)\n\n"
               f"Accuracy {'ten-crop' if result['settings']['ten_crop'] else 'centre-crop'} on each test fold; "
               f"mean ± std over folds; recall per class pooled over all test images.\n\n"
               + results_table(result) + "\n\n"
               f"Wall time of the whole run: {duration(result.get('wall_seconds', 0.0))} "
               f"({int(result['settings'].get('workers', 1))} fold(s) at a time).\n")
    for name, s in result["models"].items():
        save_confusion_png(s["pooled"]["confusion"]["normalized"], result["classes"],
                           out_dir / f"confusion-{name}.png",
                           f"{name} pooled over {n} folds  acc {100 * s['mean']:.1f}±{100 * s['std']:.1f}")
