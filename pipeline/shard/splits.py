"""Assign every image of a dataset a ``split`` (train/validation/test) and a ``fold``.

Three protocols, chosen per dataset in ``params.yaml`` (``split:`` section):

``source``
    The dataset's own split column (``source_split``) mapped to train/validation/test, e.g.
    FER2013 ``Training/PublicTest/PrivateTest``. ``val_fraction`` > 0 carves a stratified
    validation part out of the training part (RAF-DB has only train/test). ``fold`` is -1.
``kfold``
    Subject-independent, label-stratified k-fold (scikit-learn ``StratifiedGroupKFold``): every
    row gets ``fold`` in ``0..k-1`` and ``split="train"``; fold ``f``'s test part is the rows with
    ``fold == f``, its training part all other rows (see :mod:`pipeline.shards.dataset`).
``ratio``
    Subject-independent train/validation/test by fractions of subjects (``GroupShuffleSplit``),
    e.g. 7:2:1 (ResAttNet, CK+) or 80/20 (DFNet, KDEF). ``fold`` is -1.

Subjects are the groups; a row without a subject (FER2013, RAF-DB, or a missing id) is its own
group. :func:`assert_subject_independent` checks that no subject is on two sides, and
:func:`assign_splits` always calls it before returning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SPLITS: tuple[str, ...] = ("train", "validation", "test")
PROTOCOLS: tuple[str, ...] = ("source", "kfold", "ratio")


class SplitError(ValueError):
    """Split settings that cannot be applied to the data (with the reason)."""


def groups_of(df: pd.DataFrame) -> np.ndarray:
    """The grouping key per row: the subject, or the row's own ``image_id`` where it has none."""
    subject = df["subject"].astype(object) if "subject" in df else pd.Series([None] * len(df), index=df.index)
    own = "image:" + df["image_id"].astype(str)
    return np.where(subject.isna(), own, "subject:" + subject.astype(str)).astype(str)


def _source_splits(df: pd.DataFrame, cfg: dict[str, Any], seed: int, name: str) -> pd.Series:
    mapping = cfg.get("source_map") or {}
    if "source_split" not in df or df["source_split"].isna().all():
        raise SplitError(f"{name}: protocol 'source' needs a source_split column, but it is empty")
    split = df["source_split"].map(mapping)
    unknown = sorted(set(df.loc[split.isna(), "source_split"].astype(str)))
    if unknown:
        raise SplitError(f"{name}: source_split values {unknown} are not in split.source_map {mapping}")
    bad = set(split) - set(SPLITS)
    if bad:
        raise SplitError(f"{name}: split.source_map maps to {sorted(bad)}; allowed {list(SPLITS)}")
    split = split.astype(object)
    val_fraction = float(cfg.get("val_fraction", 0.0))
    if val_fraction > 0:
        from sklearn.model_selection import StratifiedShuffleSplit

        train_idx = np.flatnonzero((split == "train").to_numpy())
        if len(train_idx) < 2:
            raise SplitError(f"{name}: val_fraction={val_fraction} but only {len(train_idx)} training rows")
        labels = df["label"].to_numpy()[train_idx]
        n_val = max(1, int(round(val_fraction * len(train_idx))))
        counts = np.unique(labels, return_counts=True)[1]
        if counts.min() >= 2 and len(counts) <= n_val <= len(train_idx) - len(counts):
            sss = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
            _, val_pos = next(sss.split(np.zeros(len(train_idx)), labels))
        else:  # too few rows to stratify: a plain seeded draw
            val_pos = np.random.default_rng(seed).permutation(len(train_idx))[:n_val]
        split.iloc[train_idx[val_pos]] = "validation"
    return split


def _kfold(df: pd.DataFrame, cfg: dict[str, Any], seed: int, name: str) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    k = int(cfg.get("k", 10))
    groups = groups_of(df)
    n_groups = len(np.unique(groups))
    if k < 2:
        raise SplitError(f"{name}: split.k must be >= 2, got {k}")
    if k > n_groups:
        raise SplitError(
            f"{name}: split.k={k} folds but only {n_groups} subjects; a subject-independent k-fold "
            f"needs k <= number of subjects (set split.{name}.k to at most {n_groups})")
    folds = np.full(len(df), -1, dtype=np.int32)
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    import warnings

    with warnings.catch_warnings():
        # "The least populated class has only N members" is expected for tiny classes
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for f, (_, test_idx) in enumerate(sgkf.split(np.zeros(len(df)), df["label"].to_numpy(), groups)):
            folds[test_idx] = f
    empty = sorted(set(range(k)) - set(folds.tolist()))
    if empty:
        raise SplitError(f"{name}: folds {empty} came out empty with k={k}")
    return folds


def _ratio(df: pd.DataFrame, cfg: dict[str, Any], seed: int, name: str) -> np.ndarray:
    from sklearn.model_selection import GroupShuffleSplit

    ratios = {s: float((cfg.get("ratios") or {}).get(s, 0.0)) for s in SPLITS}
    total = sum(ratios.values())
    if ratios["train"] <= 0 or abs(total - 1.0) > 1e-6:
        raise SplitError(f"{name}: split.ratios must give train > 0 and sum to 1, got {ratios}")
    groups = groups_of(df)
    n_groups = len(np.unique(groups))
    needed = sum(1 for v in ratios.values() if v > 0)
    if n_groups < needed:
        raise SplitError(f"{name}: {n_groups} subjects cannot fill {needed} subject-independent splits")
    split = np.full(len(df), "train", dtype=object)
    rest = np.arange(len(df))
    remaining = 1.0
    for i, part in enumerate(("test", "validation")):
        frac = ratios[part] / remaining
        if frac <= 0:
            continue
        rest_groups = groups[rest]
        n_rest = len(np.unique(rest_groups))
        n_part = min(max(1, int(round(frac * n_rest))), n_rest - 1)
        gss = GroupShuffleSplit(n_splits=1, test_size=n_part, random_state=seed + i)
        keep_pos, part_pos = next(gss.split(rest, groups=rest_groups))
        split[rest[part_pos]] = part
        rest = rest[keep_pos]
        remaining -= ratios[part]
    return split


def assign_splits(df: pd.DataFrame, cfg: dict[str, Any], name: str = "dataset") -> pd.DataFrame:
    """``df`` with ``split`` (str) and ``fold`` (int32) columns set by the protocol in ``cfg``.

    Args:
        df: one row per image; needs ``image_id``, ``label``, ``subject`` (nullable) and, for
            ``source``, ``source_split``.
        cfg: the merged ``split`` params: ``protocol``, ``seed`` and the protocol's own knobs
            (``source_map``/``val_fraction``, ``k``, ``ratios``).
        name: the dataset, for error messages.

    Raises:
        SplitError: unknown protocol, settings the data cannot satisfy (e.g. ``k`` larger than
            the number of subjects), or a subject on two sides.
    """
    protocol = cfg.get("protocol")
    seed = int(cfg.get("seed", 0))
    out = df.copy()
    # the protocols are seeded; sort first so the result does not depend on the input's row order
    order = np.argsort(out["image_id"].to_numpy().astype(str), kind="stable")
    work = out.iloc[order].reset_index(drop=True)
    if protocol == "source":
        split = np.asarray(_source_splits(work, cfg, seed, name), dtype=object)
        fold = np.full(len(work), -1, dtype=np.int32)
    elif protocol == "kfold":
        fold = _kfold(work, cfg, seed, name)
        split = np.full(len(work), "train", dtype=object)
    elif protocol == "ratio":
        split = _ratio(work, cfg, seed, name)
        fold = np.full(len(work), -1, dtype=np.int32)
    else:
        raise SplitError(f"{name}: split.protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    out["split"] = split[back]
    out["fold"] = fold[back]
    assert_subject_independent(out, name)
    return out


def assert_subject_independent(df: pd.DataFrame, name: str = "dataset") -> None:
    """Raise :class:`SplitError` if a subject appears in two splits or in two folds.

    Rows without a subject are skipped (they are their own group). For k-fold rows (``fold`` >= 0)
    the sides are folds; otherwise they are splits.
    """
    has_subject = df["subject"].notna() if "subject" in df else pd.Series(False, index=df.index)
    rows = df.loc[has_subject]
    if rows.empty:
        return
    side = np.where(rows["fold"].to_numpy() >= 0, "fold " + rows["fold"].astype(str), rows["split"].astype(str))
    sides = pd.Series(side, index=rows.index).groupby(rows["subject"].astype(str)).nunique()
    leaked = sides[sides > 1]
    if len(leaked):
        raise SplitError(f"{name}: subjects on more than one side of the split: {sorted(leaked.index)[:10]}")
