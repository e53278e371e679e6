"""Stage ``train``: train one model on one dataset's shards by its recipe in ``params.yaml``.

``fer-pipeline train --model ean --dataset fer2013 [--fold K]`` reads ``train.defaults`` merged
with ``train.<model>`` (and its ``datasets.<dataset>`` overrides) and ``data/processed/<dataset>/``; writes ``models/<model>-<dataset>/``
(``-fold<K>`` appended when ``--fold`` is given): ``checkpoint.pt`` and ``dvclive/``. A recipe
with ``init: pretrained`` starts from ``models/pretrained/<model>/checkpoint.pt`` (stage
``pretrain``), one with ``weights: <file>`` from that state dict (``data/weights/``, fetched from its
public source when online, else a one-line stop saying where to put it). It trains on the top-level
``device`` (``--device`` overrides it). The work is in :mod:`pipeline.training.train_model`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core import device, params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name (fer_models registry: ean, resatt, ...)")
    parser.add_argument("--dataset", required=True, help="dataset name (fer2013, ckplus, jaffe, rafdb, kdef)")
    parser.add_argument("--fold", type=int, default=None,
                        help="k-fold datasets: the test fold (default 0; fold+1 validates)")
    parser.add_argument("--data", default="data/processed", help="root of the processed shards")
    parser.add_argument("--out", default="models", help="root of the model directories")
    parser.add_argument("--pretrained", default="models/pretrained",
                        help="stage pretrain's output: <model>/checkpoint.pt for a recipe with init: pretrained")
    params.add_argument(parser)
    device.add_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.training.data import load_split_data
    from pipeline.training.recipe import for_dataset, load_recipe, teacher_of
    from pipeline.training.runs import run_name
    from pipeline.training.train_model import train_model
    from pipeline.training.weights import WeightsError, ensure_weights

    on = device.stage_device(args.device, args.params)
    recipe = for_dataset(load_recipe("train", args.model, args.params), args.dataset)
    if teacher_of(recipe):  # its checkpoint would be an undeclared dependency of this stage
        raise SystemExit(f"train.{args.model}.teacher: a recipe with a teacher trains in the cv stage only "
                         f"(cv.models, teacher first); the train stage does not support it yet")
    try:  # before any data is read: offline without the file, stop at once
        ensure_weights(recipe, args.model)
    except WeightsError as exc:
        raise SystemExit(f"fer-pipeline train: error: {exc}") from None
    data = load_split_data(Path(args.data) / args.dataset, args.fold,
                           derived_rows=bool(recipe.get("derived_rows", True)))
    out = Path(args.out) / run_name(args.model, args.dataset, args.fold)
    result, meta = train_model(data, args.model, recipe, out, dataset=args.dataset,
                               pretrained_path=Path(args.pretrained) / args.model / "checkpoint.pt", device=on)
    print(f"{out.name}: {len(data.train)} train / {len(data.validation)} validation rows, classes "
          f"{', '.join(meta['label_names'])}; best epoch {result.best_epoch} of {recipe['epochs']}, "
          f"validation accuracy {result.best_val_acc:.4f} ({on}) -> {out / 'checkpoint.pt'}")
    return 0
