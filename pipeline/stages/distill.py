"""Stage ``distill``: EAN's iterative teacher-student transfer learning on one dataset.

``fer-pipeline distill --dataset rafdb`` reads ``distill.defaults`` merged with ``distill.<dataset>``,
the trained teacher ``models/<teacher>-<dataset>/checkpoint.pt`` (``teacher: ean``) and the
dataset's shards; writes ``models/ean_distilled-<dataset>/``: ``checkpoint.pt`` (the best student,
evaluated like any model), ``rounds.json``, ``dvclive/`` (validation accuracy per round) and
``rounds/round-<r>/`` (each round's checkpoint and per-epoch history). The rounds run inside
this one stage (see README "Training, distillation, evaluation" for why), on the top-level ``device``
(``--device`` overrides it); the work is in :mod:`pipeline.training.distill_rounds`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core import device, params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="dataset whose trained EAN is the first teacher")
    parser.add_argument("--data", default="data/processed", help="root of the processed shards")
    parser.add_argument("--models", default="models", help="root of the model directories")
    params.add_argument(parser)
    device.add_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.training.checkpoint import read_checkpoint
    from pipeline.training.data import load_split_data
    from pipeline.training.distill_rounds import distill
    from pipeline.training.recipe import load_recipe
    from pipeline.training.runs import DISTILLED

    on = device.stage_device(args.device, args.params)
    settings = load_recipe("distill", args.dataset, args.params)
    for key, off in (("co_teachers", "[]"), ("transfer", "null")):  # dvc.yaml does not declare what they read
        if settings.get(key):
            from pipeline.core.schema import ParamsError

            raise ParamsError(f"distill.{args.dataset}.{key}: only the cv stage's per-fold rounds take it; set "
                              f"it in a profile's distill.ckplus (cv) or leave it {off}")
    teacher = Path(args.models) / f"{settings.get('teacher', 'ean')}-{args.dataset}" / "checkpoint.pt"
    ckpt = read_checkpoint(teacher)
    fold = int(ckpt.get("fold", -1))
    data = load_split_data(Path(args.data) / args.dataset, fold if fold >= 0 else None,
                           derived_rows=bool(ckpt["recipe"].get("derived_rows", True)))
    out = Path(args.models) / f"{DISTILLED}-{args.dataset}"
    result = distill(teacher, data, settings, out, dataset=args.dataset, device=on)
    accs = ", ".join(f"r{r['round']} {r['val_acc']:.4f}" for r in result.rounds)
    print(f"{out.name}: validation accuracy per round ({accs}); best round {result.best_round} "
          f"-> {out / 'checkpoint.pt'}")
    return 0
