"""Stage ``pretrain``: train recipes on synthetic faces, for the recipes with ``init: pretrained``.

``fer-pipeline pretrain`` trains every recipe of ``pretrain.models`` (``train.defaults`` +
``train.<model>``, without its teacher, for ``pretrain.<model>.epochs``) on labelled synthetic
face crops (``pretrain.defaults`` + ``pretrain.<model>``: classes, sequences per class, framing,
seed) and writes ``models/pretrained/<model>/`` (``checkpoint.pt``, ``dvclive/``) and
``models/pretrained/pretrained.json`` (one entry per model: validation accuracy on synthetic
faces of unseen identities, rows, settings). With no models listed (the demo) it writes only that
index, so that ``train`` and ``cv``, which depend on the directory, always find it. It trains on the
top-level ``device`` (``--device`` overrides it). The work is in :mod:`pipeline.training.pretraining`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from pipeline.core import device, params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="models/pretrained", help="output directory (one folder per model)")
    params.add_argument(parser)
    device.add_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.core.atomic import atomic_path
    from pipeline.core.params import load, section
    from pipeline.training.pretraining import pretrain, synthetic_data
    from pipeline.training.recipe import load_recipe

    on = device.stage_device(args.device, args.params)
    params = load(args.params)
    models = list((params.get("pretrain") or {}).get("models") or [])
    out = Path(args.out)
    index = {}
    with atomic_path(out) as tmp:  # the whole directory at once: no stale model of an earlier list survives
        tmp.mkdir()
        for model in models:
            settings = section("pretrain", model, params=params)
            with tempfile.TemporaryDirectory() as faces:  # the synthetic faces, as shards: not an output
                result, meta = pretrain(model, load_recipe("train", model, args.params), settings,
                                        synthetic_data(settings, faces), tmp / model, device=on)
            index[model] = {"val_acc": result.best_val_acc, "best_epoch": result.best_epoch,
                            "n_train": meta["n_train"], "n_validation": meta["n_validation"],
                            "classes": meta["label_names"], "settings": settings}
            print(f"pretrained {model}: {meta['n_train']} synthetic faces, validation accuracy "
                  f"{result.best_val_acc:.4f} (epoch {result.best_epoch}) -> {out / model / 'checkpoint.pt'}")
        (tmp / "pretrained.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    if not models:
        print(f"pretrain.models is empty: nothing to pretrain -> {out / 'pretrained.json'}")
    return 0
