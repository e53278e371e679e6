"""Class balancing of the training part: how many times each training image is used.

Methods (``balance.method`` in ``params.yaml``), with ``n_c`` the training rows of class ``c``:

``none``
    every row once.
``oversample``
    every class up to ``T = max(n_c)``.
``undersample``
    every class down to ``T = min(n_c)``.
``target_per_class``
    every class to ``T = balance.target`` (down where ``n_c > T``, up where ``n_c < T``).

Up: each row of the class is used ``T // n_c`` times and the ``T % n_c`` rows ranked first get
one use more, so the class totals exactly ``T``. Down: the ``T`` rows ranked first are kept, the
others are dropped (and counted as such in ``stats.json``). The ranking is a seeded hash of the
``image_id`` (:func:`pipeline.shard.seeding.stable_seed`), so it does not depend on row order.

Extra uses become derived rows (``parent_id`` set) which :mod:`pipeline.shard.augment` augments when an
augmentation preset is active; otherwise they are exact copies. Validation and test rows are never
touched. For a k-fold dataset every row is some fold's test row, so dropping rows is refused; the
up-sampling is computed over the whole dataset, and since the folds are label-stratified each
fold's training part comes out balanced up to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.shard.seeding import stable_seed

METHODS: tuple[str, ...] = ("none", "oversample", "undersample", "target_per_class")


class BalanceError(ValueError):
    """Balancing settings that cannot be applied (with the reason)."""


def class_target(counts: dict[int, int], method: str, target: int | None = None) -> int | None:
    """The per-class row count ``T`` the method aims at (``None`` for ``none``)."""
    if method == "none" or not counts:
        return None
    if method == "oversample":
        return max(counts.values())
    if method == "undersample":
        return min(counts.values())
    if method == "target_per_class":
        if target is None or int(target) < 1:
            raise BalanceError(f"balance.method=target_per_class needs balance.target >= 1, got {target!r}")
        return int(target)
    raise BalanceError(f"balance.method must be one of {list(METHODS)}, got {method!r}")


def multiplicity(df: pd.DataFrame, cfg: dict[str, Any], name: str = "dataset") -> np.ndarray:
    """Uses per row of ``df`` (int64): 0 dropped, 1 once, ``m`` once plus ``m - 1`` derived copies.

    Args:
        df: rows with ``image_id``, ``label``, ``split`` and ``fold``; only ``split == "train"``
            rows are balanced, the others get 1.
        cfg: merged ``balance`` params: ``method``, ``target`` (for ``target_per_class``), ``seed``.
        name: the dataset, for error messages.
    """
    method = cfg.get("method", "none")
    seed = int(cfg.get("seed", 0))
    uses = np.ones(len(df), dtype=np.int64)
    train = (df["split"] == "train").to_numpy()
    labels = df["label"].to_numpy()
    counts = {int(c): int(n) for c, n in zip(*np.unique(labels[train], return_counts=True))}
    target = class_target(counts, method, cfg.get("target"))
    if target is None:
        return uses
    kfold = bool((df["fold"].to_numpy()[train] >= 0).any())
    shrinking = {c: n for c, n in counts.items() if n > target}
    if kfold and shrinking:
        raise BalanceError(
            f"{name}: balance.method={method} would drop rows of classes {sorted(shrinking)} to {target} "
            "per class, but in a k-fold dataset every row is a test row of its fold; use oversample "
            "or a target_per_class >= the largest class")
    ids = df["image_id"].astype(str).to_numpy()
    for c, n in counts.items():
        idx = np.flatnonzero(train & (labels == c))
        rank = sorted(idx, key=lambda i: (stable_seed("balance", seed, ids[i]), ids[i]))
        if n >= target:
            uses[idx] = 0
            uses[rank[:target]] = 1
        else:
            base, extra = divmod(target, n)
            uses[idx] = base
            uses[rank[:extra]] += 1
    return uses
