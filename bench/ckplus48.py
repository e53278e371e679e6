"""Real-data benchmark: subject-independent k-fold accuracy on any CK+48-layout folder (issue 8).

    python bench/ckplus48.py --raw /work/shared/realdata/ckplus48-dev [--models onet_probe,ean] [--folds 10] [--seeds 0,1,2]
        [--pretrain-on /work/shared/realdata/fer2013-folders [--pretrain-models ean]]

Runs the project's own pipeline under the ``ckplus48`` profile (``profiles/ckplus48.yaml`` over
``params.yaml``) in a scratch directory: ``ingest`` (CK+ reader, CK+48 layout) -> ``align``
(``precropped``) -> ``shard`` (subject-independent, label-stratified ``--folds``-fold split) ->
``pretrain`` (the recipes with ``init: pretrained``: on synthetic faces, or with ``--pretrain-on`` on a
FER2013 folder's shards, its wall time printed) -> ``cv`` (every model
trained on every fold by its recipe; with ``ean``, EAN's iterative distillation too), then prints one table: model, parameters, mean ± std test accuracy over folds,
per-class recall pooled over all folds, wall time. Nothing depends on the folder's subjects or
counts; the only requirement is the CK+48 layout (``<class>/S005_001_00000011.png``).

With ``--seeds``, the cross-validation is repeated once per seed (``train.<model>.seed`` of every
model named in ``--models``, which EAN's distillation rounds inherit), each in ``<work>/seed<s>/``;
a teacher that is not named is trained once and its finished folds reused by the other seeds. A
summary table follows: per model, the 10-fold mean of each seed, their mean and their standard
deviation, and the distilled EAN's gain over its EAN per seed. The seed alone moves EAN's 10-fold
mean by as much as most recipe changes (docs/results/ckplus48.md, "The seed"), so recipe
comparisons need several. ``--set KEY=VALUE`` (repeatable, as ``dvc exp run --set-param``) changes one
params key over the profile, e.g. ``--set pretrain.ean.epochs=40``: a lever measured in its own
``--work`` without editing the profile.

Wall times are measured on whatever else the machine is doing: the load average before and after
is printed next to them. Results, timings and every lever tried: docs/results/ckplus48.md.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# the data stages run as Prefect flows; on a busy machine its temporary server needs longer to start
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

DATASET = "ckplus"
PROFILE = "ckplus48"
PRETRAIN_SOURCE = "fer2013"  # --pretrain-on: real faces to start from (issue 28); never a CK+ face


def profile_params(base: Path, assignments: list[str] | None = None) -> dict:
    """``base`` (the demo params) with the ckplus48 profile and the ``KEY=VALUE`` ``assignments``
    (``--set``: a lever tried without editing the profile) applied."""
    import yaml

    from pipeline.profiles import compose
    from pipeline.training.recipe import check_profile

    return yaml.safe_load(compose(base.read_text(), PROFILE, ROOT / "profiles", check_profile, assignments or ()))


def bench_params(base: Path, folds: int, models: list[str], distill: bool,
                 epochs: int | None = None, pretrain_models: list[str] | None = None,
                 assignments: list[str] | None = None) -> dict:
    """``base`` + the ckplus48 profile, with the fold count and the models of this run.

    ``pretrain_models`` (``--pretrain-on``) are exactly the recipes that start from stage pretrain's
    weights learned on FER2013 (``pretrain.source: fer2013``, ``init: pretrained``). Without a FER2013
    folder (None or empty) none does, even those the profile starts from FER2013: their own
    initialisation instead, as before issue 28."""
    params = profile_params(base, assignments)
    if pretrain_models is not None or params["pretrain"].get("source") == PRETRAIN_SOURCE:
        keep = set(pretrain_models or [])
        for name, recipe in params["train"].items():
            if name not in ("matrix", "defaults") and isinstance(recipe, dict) and name not in keep \
                    and recipe.get("init") == "pretrained":
                recipe["init"] = None
        if keep:
            params["datasets"] = [DATASET, PRETRAIN_SOURCE]
            params["pretrain"].update(source=PRETRAIN_SOURCE, models=list(pretrain_models))
            params["ingest"][PRETRAIN_SOURCE] = {**(params["ingest"].get(PRETRAIN_SOURCE) or {}), "drop_duplicates": False}
            for name in pretrain_models:
                params["train"].setdefault(name, {})["init"] = "pretrained"
        else:
            params["datasets"] = [DATASET]
            params["pretrain"].update(source="synthetic", models=[])
    params["split"].setdefault(DATASET, {}).update({"protocol": "kfold", "k": int(folds)})
    params["cv"].setdefault(DATASET, {}).update({"models": list(models), "distill": bool(distill)})
    teachers = [(params["train"].get(m) or {}).get("teacher") or {} for m in models]
    wanted = set(models) | {t["model"] for t in teachers if t.get("model")}
    params["pretrain"]["models"] = [m for m in params["pretrain"].get("models") or [] if m in wanted | set(pretrain_models or [])]
    if epochs is not None:  # smoke runs only: every recipe (teachers too) and every distillation round
        for name in models:
            params["train"].setdefault(name, {})["epochs"] = int(epochs)
            teacher = (params["train"][name].get("teacher") or {}).get("model")
            if teacher:
                params["train"].setdefault(teacher, {})["epochs"] = int(epochs)
        params["distill"].setdefault(DATASET, {})["epochs"] = int(epochs)
        params["pretrain"]["defaults"].update(epochs=int(epochs), per_class=2, validation_per_class=1)
        for name, entry in params["pretrain"].items():  # a per-model length (the profile's ean) too
            if isinstance(entry, dict) and name != "defaults" and "epochs" in entry:
                entry["epochs"] = int(epochs)
    return params


def with_seed(params: dict, models: list[str], seed: int) -> dict:
    """A copy of ``params`` with ``train.<model>.seed = seed`` for each of ``models``."""
    params = copy.deepcopy(params)
    for name in models:
        params["train"].setdefault(name, {})["seed"] = int(seed)
    return params


def profile_pretrained(profile: dict, models: list[str]) -> list[str]:
    """The recipes the profile starts from FER2013 pretraining (``pretrain.models`` with ``source:
    fer2013``) and this run trains (``models`` and their teachers); with another source, every model
    but ``onet_probe`` (whose trunk is ONet's already)."""
    if profile["pretrain"].get("source") != PRETRAIN_SOURCE:
        return [m for m in models if m != "onet_probe"]
    teachers = {((profile["train"].get(m) or {}).get("teacher") or {}).get("model") for m in models}
    return [m for m in profile["pretrain"].get("models") or [] if m in set(models) | teachers]


def parse_seeds(text: str, parser: argparse.ArgumentParser) -> list[int]:
    """``--seeds 0,1,2`` -> ``[0, 1, 2]``; anything else is a usage error."""
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--seeds {text!r}: comma-separated integers expected")
    if not seeds or len(set(seeds)) != len(seeds):
        parser.error(f"--seeds {text!r}: one or more different seeds expected")
    return seeds


def reuse_folds(models: list[str], source: Path, target: Path) -> None:
    """Copy the finished fold runs of ``models`` from ``source`` to ``target`` (a models directory),
    where ``cross_validate`` finds them by their run keys (recipe, data and teacher, not the path)."""
    import shutil

    for name in models:
        for run in sorted(source.glob(f"{name}-fold*")):
            if (run / "scores.json").is_file() and not (target / run.name).exists():
                shutil.copytree(run, target / run.name)


def seeds_table(results: dict[int, dict], distilled: str, student: str) -> str:
    """Markdown: per model the 10-fold mean of each seed, their mean and sample standard deviation;
    the distilled model's gain over ``student`` per seed."""
    import statistics

    seeds = list(results)
    first = results[seeds[0]]["models"]
    head = ["model"] + [f"seed {s}" for s in seeds] + ["mean over seeds", "std over seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in first:
        means = [100 * results[s]["models"][name]["mean"] for s in seeds]
        gains = ([m - 100 * results[s]["models"][student]["mean"] for m, s in zip(means, seeds)]
                 if name == distilled and student in first else None)
        values = means + [statistics.fmean(means)]
        cells = ([f"{v:.2f}" for v in values] if gains is None else
                 [f"{v:.2f} ({g:+.2f})" for v, g in zip(values, gains + [statistics.fmean(gains)])])
        lines.append("| " + " | ".join([name] + cells + [f"{statistics.stdev(means):.2f}"]) + " |")
    return "\n".join(lines)


def data_steps(name: str, raw: Path, work: Path) -> list[list[str]]:
    """ingest -> align -> shard of dataset ``name`` from ``raw`` into ``work``."""
    return [
        ["ingest", name, "--raw", str(raw), "--out", str(work / "interim" / name), "--no-prefect"],
        ["align", name, "--manifest", str(work / "interim" / name), "--out", str(work / "aligned" / name),
         "--no-progress"],
        ["shard", name, "--aligned", str(work / "aligned" / name), "--out", str(work / "processed" / name),
         "--no-prefect", "--no-progress"],
    ]


def prepare(raw: Path, work: Path, params_file: Path, pretrain_on: Path | None = None) -> Path:
    """ingest -> align -> shard of ``raw`` into ``work`` (and of the FER2013 folder ``pretrain_on``,
    once), and pretrain (the recipes of ``pretrain.models``, on synthetic faces or FER2013's shards)
    into ``work/pretrained``, skipped when the same settings made it already; returns the shards'
    root (``work/processed``)."""
    import json

    import yaml

    from pipeline.cli import main
    from pipeline.core.params import section
    from pipeline.training.pretraining import pretrain_recipe
    from pipeline.training.recipe import fingerprint, load_recipe

    steps = data_steps(DATASET, raw, work)
    if pretrain_on is not None and not (work / "processed" / PRETRAIN_SOURCE / "stats.json").is_file():
        steps += data_steps(PRETRAIN_SOURCE, pretrain_on, work)
    for argv in steps:
        if main(argv + ["--params", str(params_file)]) != 0:
            raise SystemExit(f"fer-pipeline {' '.join(argv[:2])} failed")
    params = yaml.safe_load(params_file.read_text())
    # what the stage trains (the recipe without its teacher, init and seed): a lever on the
    # fine-tuning alone (e.g. no teacher) reuses the pretraining
    trained = {m: pretrain_recipe(load_recipe("train", m, str(params_file)), section("pretrain", m, params=params))
               for m in params["pretrain"]["models"]}
    key = fingerprint(params["pretrain"], trained, str(pretrain_on))
    done = work / "pretrained" / "bench-key.json"
    if not (done.is_file() and json.loads(done.read_text()) == key):
        t0 = time.perf_counter()
        if main(["pretrain", "--out", str(work / "pretrained"), "--data", str(work / "processed"),
                 "--params", str(params_file)]) != 0:
            raise SystemExit("fer-pipeline pretrain failed")
        done.write_text(json.dumps(key))
        print(f"pretrain ({params['pretrain'].get('source', 'synthetic')}: "
              f"{', '.join(params['pretrain']['models']) or 'no models'}) {time.perf_counter() - t0:.0f} s")
    return work / "processed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, type=Path, help="a CK+48-layout folder (one sub-folder per class)")
    parser.add_argument("--models", default=None,
                        help="comma-separated recipes (default: the profile's cv.ckplus.models); a recipe's teacher is trained (and reported) first; "
                        "with ean, the distilled EAN is added (see --no-distill)")
    parser.add_argument("--folds", type=int, default=10, help="subject-independent folds (default 10)")
    parser.add_argument("--no-distill", action="store_true", help="skip EAN's distillation")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="base params (demo profile)")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one); "
                        "re-running with the same --work reuses finished folds")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds: the whole cross-validation once per seed of the named models, "
                        "then their mean and spread (default: the recipes' own seed, one run)")
    parser.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests only
    parser.add_argument("--pretrain-on", type=Path, default=None,
                        help="a FER2013 folder (CSV or image folders): pretrain the recipes of --pretrain-models on "
                        "its shards (stage pretrain, pretrain.source: fer2013) and start them from those weights")
    parser.add_argument("--pretrain-models", default=None,
                        help="comma-separated recipes started from the FER2013 pretraining (default: those the "
                        "profile starts from it, pretrain.models)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one params key over the profile, as `dvc exp run --set-param` (repeatable; "
                        "e.g. pretrain.ean.epochs=40): a lever tried in its own --work")
    parser.add_argument("--threads", type=int, default=2, help="torch threads with --workers 1 (default 2)")
    parser.add_argument("--workers", type=int, default=None,
                        help="folds trained at once, one process each (default: cv.workers of the profile)")
    args = parser.parse_args(argv)

    import torch
    import yaml

    from pipeline.core.device import stage_device
    from pipeline.evaluation.crossval import cross_validate, results_table, write_outputs
    from pipeline.profiles import ProfileError
    from pipeline.training.runs import DISTILLED

    if not args.raw.is_dir():
        parser.error(f"--raw {args.raw}: not a directory")
    torch.set_num_threads(args.threads)
    try:
        profile = profile_params(args.params, args.set)
    except ProfileError as exc:
        parser.error(str(exc))
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else profile["cv"][DATASET]["models"]
    distill = "ean" in models and not args.no_distill
    seeds = [None] if args.seeds is None else parse_seeds(args.seeds, parser)
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="ckplus48-bench-")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    try:
        params_file = work / "params.yaml"
        pretrain_models = None
        if args.pretrain_on is not None:
            if not args.pretrain_on.is_dir():
                parser.error(f"--pretrain-on {args.pretrain_on}: not a directory")
            pretrain_models = ([m.strip() for m in args.pretrain_models.split(",") if m.strip()]
                               if args.pretrain_models else profile_pretrained(profile, models))
            if not pretrain_models:
                parser.error(f"--pretrain-on: the profile starts none of {', '.join(models)} from FER2013; "
                             "name them with --pretrain-models")
        elif profile["pretrain"].get("source") == PRETRAIN_SOURCE and profile_pretrained(profile, models):
            print(f"no --pretrain-on: {', '.join(profile_pretrained(profile, models))} start(s) from their own "
                  f"initialisation, not from the profile's FER2013 pretraining (pass --pretrain-on FOLDER for it)")
        params = bench_params(args.params, args.folds, models, distill, args.epochs, pretrain_models, args.set)
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        load0, t0 = os.getloadavg()[0], time.perf_counter()
        data_root = prepare(args.raw.resolve(), work, params_file,
                            args.pretrain_on.resolve() if args.pretrain_on is not None else None)
        t_data = time.perf_counter() - t0
        settings = dict(params["cv"]["defaults"], **params["cv"][DATASET])
        if args.workers is not None:
            settings["workers"] = args.workers
        results: dict = {}
        for seed in seeds:
            run_dir = work if seed is None else work / f"seed{seed}"
            run_params = params_file
            if seed is not None:
                run_params = run_dir / "params.yaml"
                run_dir.mkdir(parents=True, exist_ok=True)
                run_params.write_text(yaml.safe_dump(with_seed(params, models, seed), sort_keys=False))
                if results:  # teachers nobody asked for: trained by the first seed only
                    first = results[seeds[0]]
                    reuse_folds([m for m in first["models"] if m not in models and m != DISTILLED],
                                work / f"seed{seeds[0]}" / "models", run_dir / "models")
            result = cross_validate(data_root / DATASET, DATASET, settings, run_dir / "models", str(run_params),
                                    pretrained_dir=work / "pretrained",
                                    device=str(stage_device(None, str(run_params))))  # as the cv stage
            write_outputs(result, run_dir / "eval")
            results[seed] = result
            load1 = os.getloadavg()[0]
            print()
            print(f"CK+48 at {args.raw}: {sum(result['models'][models[0]]['pooled']['per_class'][c]['support'] for c in result['classes'])} "
                  f"images, subject-independent {result['k']}-fold, accuracy "
                  f"{'ten-crop' if result['settings']['ten_crop'] else 'centre-crop'} (mean ± std over folds), "
                  f"recall R pooled over folds; {settings.get('workers', 1)} fold(s) at a time"
                  + ("" if seed is None else f"; seed {seed} of {', '.join(models)}"))
            print(results_table(result))
            print(f"data stages {t_data:.0f}s; cross-validation {result['wall_seconds']:.0f}s; "
                  f"total {time.perf_counter() - t0:.0f}s; load average {load0:.1f} at start, "
                  f"{load1:.1f} at end ({os.cpu_count()} cores); outputs in {run_dir}"
                  + (" (temporary)" if tmp else ""))
        if len(seeds) > 1:
            print()
            print(f"Over seeds {', '.join(map(str, seeds))}: {result['k']}-fold mean accuracy per seed (%); "
                  f"{DISTILLED}: (gain over ean)")
            print(seeds_table(results, DISTILLED, "ean"))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
