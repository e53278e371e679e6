"""Stage ``cv``: subject-independent k-fold cross-validation of models on one k-fold dataset.

``fer-pipeline cv ckplus`` reads ``cv.defaults`` merged with ``cv.<dataset>`` (models, distill,
validation fold, ten-crop, folds), the recipes ``train.<model>`` and ``distill.<dataset>``, and the
k-fold shards ``data/processed/<dataset>/`` (and ``models/pretrained/`` for a recipe with ``init:
pretrained``); trains (and distils) one model per fold under
``models/cv/<dataset>/<model>-fold<K>/`` and writes ``eval/cv/<dataset>/``: ``metrics.json`` (per
fold and pooled), ``results.md`` (mean ± std table) and ``confusion-<model>.png`` (pooled). Folds
train and score on the top-level ``device`` (``--device`` overrides it). The work is in
:mod:`pipeline.evaluation.crossval`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core import device, params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="a k-fold dataset (split.<dataset>.protocol: kfold), e.g. ckplus")
    parser.add_argument("--data", default="data/processed", help="root of the processed shards")
    parser.add_argument("--models", default="models/cv", help="root of the per-fold model directories")
    parser.add_argument("--out", default="eval/cv", help="root of the cross-validation results")
    parser.add_argument("--pretrained", default="models/pretrained",
                        help="stage pretrain's output: <model>/checkpoint.pt for recipes with init: pretrained")
    parser.add_argument("--only", default=None,
                        help="comma-separated models to run instead of cv.<dataset>.models (distilled EAN: ean_distilled)")
    params.add_argument(parser)
    device.add_argument(parser)


def settings_for(dataset: str, only: str | None, params_file: str | None) -> dict:
    """The ``cv`` settings of ``dataset``; ``only`` narrows the models (``ean_distilled`` = EAN + distill)."""
    from pipeline.training.runs import DISTILLED
    from pipeline.core.params import section

    settings = dict(section("cv", dataset, path=params_file))
    if only:
        wanted = [m.strip() for m in only.split(",") if m.strip()]
        settings["distill"] = DISTILLED in wanted
        models = [m for m in wanted if m != DISTILLED]
        if settings["distill"] and "ean" not in models:
            models.insert(0, "ean")  # the distilled EAN needs its teacher
        settings["models"] = models
    return settings


def run(args: argparse.Namespace) -> int:
    from pipeline.evaluation.crossval import cross_validate, results_table, write_outputs
    from pipeline.training.weights import WeightsError

    on = device.stage_device(args.device, args.params)
    settings = settings_for(args.dataset, args.only, args.params)
    try:
        result = cross_validate(Path(args.data) / args.dataset, args.dataset, settings,
                                Path(args.models) / args.dataset, args.params, pretrained_dir=Path(args.pretrained),
                                device=str(on))
    except WeightsError as exc:  # raised before any fold trains
        raise SystemExit(f"fer-pipeline cv: error: {exc}") from None
    out = Path(args.out) / args.dataset
    write_outputs(result, out)
    print(results_table(result))
    print(f"-> {out / 'metrics.json'}, {out / 'results.md'}")
    return 0
