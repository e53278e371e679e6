"""Stage ``pretrain``: train recipes on a large source of faces, for the recipes with ``init: pretrained``.

``fer-pipeline pretrain`` trains every recipe of ``pretrain.models`` (``train.defaults`` +
``train.<model>``, without its teacher, for ``pretrain.<model>.epochs``) on ``pretrain.source``:
``synthetic``, labelled synthetic face crops (``pretrain.defaults`` + ``pretrain.<model>``: classes,
sequences per class, framing, seed), or a processed dataset (``data/processed/<source>``, e.g.
``fer2013``: its train split trains and its validation split selects, its classes are the
pretraining's; the fine-tuning replaces the head where the target's classes differ), and writes ``models/pretrained/<model>/`` (``checkpoint.pt``, ``dvclive/``) and
``models/pretrained/pretrained.json`` (one entry per model: validation accuracy on synthetic
faces of unseen identities, rows, settings). With no models listed (the demo) it writes only that
index, so that ``train`` and ``cv``, which depend on the directory, always find it. It trains on the
top-level ``device`` (``--device`` overrides it). The work is in :mod:`pipeline.training.pretraining`.

Resumable: each model trains in ``.pretrained.parts/<model>/`` beside the output (its ``last.pt``
after every epoch, keyed by recipe and data), so a killed run of this long stage (FER2013: most of
an hour on 2 cores) continues from its last epoch; the output directory is replaced as a whole once
every model is done, and the parts are removed then.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from pipeline.core import device, params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="models/pretrained", help="output directory (one folder per model)")
    parser.add_argument("--data", default="data/processed", help="root of the processed shards (pretrain.source "
                        "other than synthetic)")
    params.add_argument(parser)
    device.add_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.core.atomic import atomic_path, parts_dir
    from pipeline.core.params import load, section
    from pipeline.training.pretraining import pretrain, synthetic_data
    from pipeline.training.recipe import load_recipe

    on = device.stage_device(args.device, args.params)
    params = load(args.params)
    models = list((params.get("pretrain") or {}).get("models") or [])
    source = (params.get("pretrain") or {}).get("source", "synthetic")
    shards = None
    if source != "synthetic" and models:
        from pipeline.training.data import load_split_data

        shards = load_split_data(Path(args.data) / source, derived_rows=False)
    out = Path(args.out)
    parts = parts_dir(out)
    index = {}
    with atomic_path(out) as tmp:  # the whole directory at once: no stale model of an earlier list survives
        tmp.mkdir()
        for model in models:
            settings = section("pretrain", model, params=params)
            with tempfile.TemporaryDirectory() as faces:  # the synthetic faces, as shards: not an output
                data = shards if shards is not None else synthetic_data(settings, faces)
                result, meta = pretrain(model, load_recipe("train", model, args.params), settings, data,
                                        parts / model, device=on, source=source)
            (parts / model).rename(tmp / model)  # finished: its parts become the output's
            index[model] = {"source": source, "val_acc": result.best_val_acc, "best_epoch": result.best_epoch,
                            "n_train": meta["n_train"], "n_validation": meta["n_validation"],
                            "classes": meta["label_names"], "settings": settings}
            print(f"pretrained {model}: {meta['n_train']} {source} faces, validation accuracy "
                  f"{result.best_val_acc:.4f} (epoch {result.best_epoch}) -> {out / model / 'checkpoint.pt'}")
        (tmp / "pretrained.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(parts)
    if not models:
        print(f"pretrain.models is empty: nothing to pretrain -> {out / 'pretrained.json'}")
    return 0
