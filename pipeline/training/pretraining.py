"""Pretraining on synthetic faces (stage ``pretrain``), and a training that starts from it.

A recipe with ``init: pretrained`` (``train.<model>``) starts from the weights that stage
``pretrain`` learned for that recipe on labelled synthetic face crops (made by the stage with
:func:`pipeline.synthetic.crops.face_crops`), instead of from a random initialisation: a small
real dataset such as CK+ then fine-tunes features already tuned to brows, eyes and mouth. The
pretraining runs the model's own recipe (input, augmentation, optimizer), without its teacher,
for ``pretrain.defaults.epochs`` epochs, and selects on synthetic faces of other identities.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from pipeline.training.checkpoint import read_checkpoint
from pipeline.training.data import SplitData

#: values of a recipe's ``init``: None (the model's own initialisation) or "pretrained"
INITS = (None, "pretrained")


def init_of(recipe: dict[str, Any]) -> str | None:
    """The recipe's ``init`` (None or ``"pretrained"``), checked."""
    init = recipe.get("init")
    if init not in INITS:
        raise ValueError(f"recipe init {init!r}: known values are null and 'pretrained'")
    return init


def pretrain_recipe(recipe: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The model's ``recipe`` as the pretraining runs it: no teacher, no init, the ``epochs`` and
    ``seed`` of ``settings`` (so that the recipe's own seed, varied by a benchmark, does not change
    the pretraining)."""
    out = copy.deepcopy(recipe)
    out.pop("datasets", None)
    out.update(teacher=None, init=None, epochs=int(settings["epochs"]), seed=int(settings["seed"]))
    return out


def pretrain(model_name: str, recipe: dict[str, Any], settings: dict[str, Any], data: SplitData,
             out_dir: str | Path):
    """Train ``model_name`` by its ``recipe`` (as :func:`pretrain_recipe` makes it) on the synthetic
    faces ``data`` into ``out_dir``; returns what :func:`pipeline.training.train_model.train_model` returns."""
    from pipeline.training.train_model import train_model

    return train_model(data, model_name, pretrain_recipe(recipe, settings), out_dir, dataset="synthetic")


def load_pretrained(model: torch.nn.Module, path: str | Path | None, *, arch: str, model_args: dict[str, Any],
                    in_chans: int, label_ids: list[int]) -> str:
    """Load the pretrained weights at ``path`` into ``model`` (same network, classes and channels).

    Returns the checkpoint's ``params_hash``, which goes into the run key of the training that
    starts from it. Raises ``FileNotFoundError`` when there is no checkpoint and ``ValueError``
    naming the file when it holds another network, other classes or other input channels.
    """
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"init: pretrained: no pretrained checkpoint at {path} (list the recipe in "
                                f"pretrain.models and run `fer-pipeline pretrain`, stage pretrain)")
    ckpt = read_checkpoint(path)
    mine = {"model": arch, "model_args": model_args, "in_chans": in_chans, "label_ids": list(label_ids)}
    theirs = {k: (list(ckpt[k]) if k == "label_ids" else ckpt[k]) for k in mine}
    wrong = [f"{k} {theirs[k]} (this run: {mine[k]})" for k in mine if theirs[k] != mine[k]]
    if wrong:
        raise ValueError(f"{path}: the pretrained network differs from this run's: {'; '.join(wrong)}")
    model.load_state_dict(ckpt["state_dict"])
    return str(ckpt.get("params_hash", ""))
