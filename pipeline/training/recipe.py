"""A training recipe: the merged ``train.defaults`` + ``train.<model>`` settings, seeds, RNG states.

The recipe is a plain mapping read from ``params.yaml`` (see ``pipeline.core.params.section``), so DVC
tracks exactly the keys a run depends on; :func:`fingerprint` hashes it (with the data) into the
``params_hash`` stored in every checkpoint, which is also how an interrupted run recognises its
own ``last.pt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from typing import Any

import numpy as np


def load_recipe(section_name: str, key: str | None, params_file: str | None = None) -> dict[str, Any]:
    """The merged settings of ``section_name`` for ``key`` (a model name, or a dataset for distill)."""
    from pipeline.core.params import section

    return section(section_name, key, path=params_file)


def for_dataset(recipe: dict[str, Any], dataset: str) -> dict[str, Any]:
    """``recipe`` with its ``datasets.<dataset>`` overrides merged in (and the ``datasets`` key gone).

    For a paper that trains one model differently per dataset, e.g. DNN-CBAM: 120 epochs on
    FER2013, 300 on CK+ (``dnn_cbam: {epochs: 120, datasets: {ckplus: {epochs: 300}}}``).
    """
    from pipeline.core.schema import deep_merge

    recipe = dict(recipe)
    per_dataset = recipe.pop("datasets", None) or {}
    return deep_merge(recipe, per_dataset.get(dataset))


def teacher_of(recipe: dict[str, Any]) -> str | None:
    """The recipe name of ``recipe``'s ``teacher`` (None: it learns from labels only)."""
    return (recipe.get("teacher") or {}).get("model")


def fingerprint(*parts: Any) -> str:
    """SHA-256 (hex, 16 chars) of the canonical JSON of ``parts``: equal settings, equal hash."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def seed_everything(seed: int, deterministic: bool = True) -> "torch.Generator":  # noqa: F821
    """Seed Python, NumPy and torch; make torch deterministic where it can be.

    ``torch.use_deterministic_algorithms(True, warn_only=True)`` keeps CPU runs bit-identical
    and only warns for a CUDA kernel without a deterministic version. Returns a seeded
    ``torch.Generator`` for the DataLoader's shuffling.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed NumPy and ``random`` of a worker from torch's seed."""
    import torch

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def rng_state() -> dict[str, Any]:
    """The global RNG states (Python, NumPy, torch CPU, and every CUDA device's where CUDA is
    initialised: dropout and random ops on the GPU draw from those) for a resumable checkpoint."""
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # a CPU run's state is as before
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (the CUDA states only where this machine has CUDA: a run
    resumed on another kind of machine continues, but is exact only on the same kind)."""
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        for index, s in enumerate(cuda[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, index)


#: values of a recipe's ``init``: None (the model's own initialisation) or "pretrained"
INITS = (None, "pretrained")


def init_of(recipe: dict[str, Any]) -> str | None:
    """The recipe's ``init`` (None or ``"pretrained"``), checked."""
    init = recipe.get("init")
    if init not in INITS:
        raise ValueError(f"recipe init {init!r}: known values are null and 'pretrained'")
    return init


def unpretrained_recipes(params: dict[str, Any]) -> list[str]:
    """The recipes the profile runs (``train.matrix``, ``cv.<dataset>.models`` of ``cv.datasets``)
    with ``init: pretrained`` but missing from ``pretrain.models``."""
    from pipeline.core.params import section

    used = {pair["model"] for pair in ((params.get("train") or {}).get("matrix") or {}).values()}
    for ds in (params.get("cv") or {}).get("datasets") or []:
        used |= set(section("cv", ds, params).get("models") or [])
    listed = set((params.get("pretrain") or {}).get("models") or [])
    return sorted(m for m in used if init_of(section("train", m, params)) == "pretrained" and m not in listed)


def taught_train_pairs(params: dict[str, Any]) -> list[str]:
    """The ``train.matrix`` entries (as ``key (train.<model>.teacher: <teacher>)``) whose recipe has a
    ``teacher``: `dvc repro` would stop at their train stage, so a profile may not list them."""
    from pipeline.core.params import section

    taught = []
    for key, pair in ((params.get("train") or {}).get("matrix") or {}).items():
        teacher = teacher_of(for_dataset(section("train", pair["model"], params), pair["dataset"]))
        if teacher:
            taught.append(f"{key} (train.{pair['model']}.teacher: {teacher})")
    return taught


def check_profile(params: dict[str, Any]) -> None:
    """Raise ``ValueError`` for a profile whose recipes could not run: a ``train.matrix`` pair whose
    recipe has a teacher, or a recipe with ``init: pretrained`` that ``pretrain.models`` omits."""
    taught = taught_train_pairs(params)
    if taught:
        raise ValueError(f"train.matrix pairs whose recipe learns from a teacher: {', '.join(taught)}; the "
                         "train stage does not support teachers yet (the teacher's checkpoint would be an "
                         "undeclared dependency): train them in the cv stage (cv.<dataset>.models) and drop "
                         "them from train.matrix")
    unpretrained = unpretrained_recipes(params)
    if unpretrained:
        raise ValueError(f"recipes with init: pretrained that pretrain.models does not list: "
                         f"{', '.join(unpretrained)} (stage pretrain would not make their starting weights)")
