"""Pretraining on synthetic faces or on a large real dataset's shards: the work of stage ``pretrain``.

A recipe with ``init: pretrained`` (``train.<model>``) starts from the weights that stage
``pretrain`` learned for that recipe on labelled synthetic face crops (made by the stage with
:func:`pipeline.synthetic.crops.face_crops`, :func:`synthetic_data`), instead of from a random initialisation: a small
real dataset such as CK+ then fine-tunes features already tuned to brows, eyes and mouth. The
pretraining runs the model's own recipe (input, augmentation, optimizer), without its teacher,
for ``pretrain.defaults.epochs`` epochs, and selects on synthetic faces of other identities.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pipeline.training.data import SplitData
from pipeline.training.train_model import train_model

#: the seed of the validation faces is the pretraining seed + this: other identities
VALIDATION_SEED_OFFSET = 1000


def pretrain_recipe(recipe: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The model's ``recipe`` as the pretraining runs it: no teacher, no init, the ``epochs`` and
    ``seed`` of ``settings`` (so that the recipe's own seed, varied by a benchmark, does not change
    the pretraining)."""
    out = copy.deepcopy(recipe)
    out.pop("datasets", None)
    out.update(teacher=None, init=None, epochs=int(settings["epochs"]), seed=int(settings["seed"]))
    return out


def pretrain(model_name: str, recipe: dict[str, Any], settings: dict[str, Any], data: SplitData,
             out_dir: str | Path, device="cpu", source: str = "synthetic"):
    """Train ``model_name`` by its ``recipe`` (as :func:`pretrain_recipe` makes it) on ``data`` (the
    synthetic faces, or the shards of dataset ``source``) into ``out_dir`` on ``device``; returns what
    :func:`pipeline.training.train_model.train_model` returns."""
    return train_model(data, model_name, pretrain_recipe(recipe, settings), out_dir, dataset=source,
                       device=device)


def synthetic_data(settings: dict[str, Any], root: str | Path) -> SplitData:
    """Training faces (``per_class`` sequences per class) and validation faces of other identities,
    written as shards under ``root`` (the one shard writer) and read back as the training
    machinery's :class:`~pipeline.training.data.SplitData` (no test part)."""
    from pipeline.core.labels import LABEL_INDEX
    from pipeline.shards.dataset import ShardDataset
    from pipeline.shards.format import ShardWriter, rows_to_table
    from pipeline.synthetic.crops import face_crops
    from pipeline.synthetic.photo import encode_png
    from pipeline.training.data import data_fingerprint

    def write(split: str, per_class: int, seed: int) -> ShardDataset:
        rows = [{"image": encode_png(c.image), "label": LABEL_INDEX[c.label], "label_name": c.label,
                 "dataset": "synthetic", "subject": c.id.rsplit("_", 1)[0], "split": split, "fold": -1,
                 "image_id": f"synthetic {c.id}", "parent_id": None, "augmentation": None}
                for c in face_crops(classes, per_class, seed, render=int(settings["render"]), box=settings["box"],
                                    frames=int(settings["frames"]))]
        writer = ShardWriter(root, split)
        writer.write(rows_to_table(rows))
        writer.close()
        return ShardDataset(root, split, size=None, classes=classes)

    classes, seed = list(settings["classes"]), int(settings["seed"])
    Path(root).mkdir(parents=True, exist_ok=True)
    train = write("train", int(settings["per_class"]), seed)
    val = write("validation", int(settings["validation_per_class"]), seed + VALIDATION_SEED_OFFSET)
    return SplitData(train, val, train.subset([]), sorted(LABEL_INDEX[c] for c in classes),
                     data_fingerprint(train, val))
