"""Stage ``pretrain``: train recipes on synthetic faces, for the recipes with ``init: pretrained``.

``fer-pipeline pretrain`` trains every recipe of ``pretrain.models`` (``train.defaults`` +
``train.<model>``, without its teacher, for ``pretrain.<model>.epochs``) on labelled synthetic
face crops (``pretrain.defaults`` + ``pretrain.<model>``: classes, sequences per class, framing,
seed) and writes ``models/pretrained/<model>/`` (``checkpoint.pt``, ``dvclive/``) and
``models/pretrained/pretrained.json`` (one entry per model: validation accuracy on synthetic
faces of unseen identities, rows, settings). With no models listed (the demo) it writes only that
index, so that ``train`` and ``cv``, which depend on the directory, always find it. The work is in
:mod:`pipeline.training.pretraining`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: the seed of the validation faces is the pretraining seed + this: other identities
VALIDATION_SEED_OFFSET = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="models/pretrained", help="output directory (one folder per model)")
    parser.add_argument("--params", default=None, help="params file (default ./params.yaml or $FER_PARAMS)")


def synthetic_data(settings: dict[str, Any]):
    """Training faces (``per_class`` sequences per class) and validation faces of other identities,
    as the training machinery's :class:`~pipeline.training.data.SplitData` (no test part)."""
    from pipeline.labels import LABEL_INDEX
    from pipeline.synthetic.crops import face_crops
    from pipeline.synthetic.photo import encode_png
    from pipeline.training.data import Rows, SplitData, data_fingerprint

    def rows(per_class: int, seed: int) -> Rows:
        out = Rows()
        for c in face_crops(classes, per_class, seed, render=int(settings["render"]), box=settings["box"],
                            frames=int(settings["frames"])):
            out.images.append(encode_png(c.image))
            out.labels.append(LABEL_INDEX[c.label])
            out.ids.append(f"synthetic {c.id}")
        return out

    classes, seed = list(settings["classes"]), int(settings["seed"])
    train = rows(int(settings["per_class"]), seed)
    val = rows(int(settings["validation_per_class"]), seed + VALIDATION_SEED_OFFSET)
    return SplitData(train, val, Rows(), sorted(LABEL_INDEX[c] for c in classes), data_fingerprint(train, val))


def run(args: argparse.Namespace) -> int:
    from pipeline.atomic import atomic_path
    from pipeline.params import load, section
    from pipeline.training.pretraining import pretrain
    from pipeline.training.recipe import load_recipe

    params = load(args.params)
    models = list((params.get("pretrain") or {}).get("models") or [])
    out = Path(args.out)
    index = {}
    with atomic_path(out) as tmp:  # the whole directory at once: no stale model of an earlier list survives
        tmp.mkdir()
        for model in models:
            settings = section("pretrain", model, params=params)
            result, meta = pretrain(model, load_recipe("train", model, args.params), settings,
                                    synthetic_data(settings), tmp / model)
            index[model] = {"val_acc": result.best_val_acc, "best_epoch": result.best_epoch,
                            "n_train": meta["n_train"], "n_validation": meta["n_validation"],
                            "classes": meta["label_names"], "settings": settings}
            print(f"pretrained {model}: {meta['n_train']} synthetic faces, validation accuracy "
                  f"{result.best_val_acc:.4f} (epoch {result.best_epoch}) -> {out / model / 'checkpoint.pt'}")
        (tmp / "pretrained.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    if not models:
        print(f"pretrain.models is empty: nothing to pretrain -> {out / 'pretrained.json'}")
    return 0
