"""Balancing arithmetic, exactly, on the training part only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.shard.balance import BalanceError, multiplicity


def frame(counts: dict[int, int], split: str = "train", fold: int = -1) -> pd.DataFrame:
    rows = [{"image_id": f"d/{c}_{j}", "label": c, "split": split, "fold": fold}
            for c, n in counts.items() for j in range(n)]
    return pd.DataFrame(rows)


def totals(df: pd.DataFrame, uses: np.ndarray) -> dict[int, int]:
    return {int(c): int(uses[(df["label"] == c).to_numpy()].sum()) for c in sorted(df["label"].unique())}


def test_none_uses_every_row_once():
    df = frame({0: 5, 1: 2})
    assert multiplicity(df, {"method": "none"}).tolist() == [1] * 7


def test_oversample_brings_every_class_to_the_largest():
    df = frame({0: 10, 1: 3, 2: 4, 3: 10})
    uses = multiplicity(df, {"method": "oversample", "seed": 0})
    assert totals(df, uses) == {0: 10, 1: 10, 2: 10, 3: 10}
    # 10 = 3 * 3 + 1: two rows used 3 times, one 4 times
    assert sorted(uses[(df["label"] == 1).to_numpy()].tolist()) == [3, 3, 4]
    assert sorted(uses[(df["label"] == 2).to_numpy()].tolist()) == [2, 2, 3, 3]
    assert (uses[(df["label"] == 0).to_numpy()] == 1).all()


def test_undersample_keeps_exactly_the_smallest_count_per_class():
    df = frame({0: 10, 1: 3, 2: 7})
    uses = multiplicity(df, {"method": "undersample", "seed": 0})
    assert totals(df, uses) == {0: 3, 1: 3, 2: 3}
    assert set(uses.tolist()) == {0, 1}


def test_target_per_class_goes_up_and_down():
    df = frame({0: 9, 1: 2, 2: 5})
    uses = multiplicity(df, {"method": "target_per_class", "target": 5, "seed": 0})
    assert totals(df, uses) == {0: 5, 1: 5, 2: 5}
    assert sorted(uses[(df["label"] == 1).to_numpy()].tolist()) == [2, 3]
    with pytest.raises(BalanceError, match="target >= 1"):
        multiplicity(df, {"method": "target_per_class"})


def test_validation_and_test_rows_are_never_balanced():
    df = pd.concat([frame({0: 6, 1: 2}), frame({0: 5, 1: 1}, "validation"), frame({0: 4}, "test")],
                   ignore_index=True)
    df["image_id"] = [f"r{i}" for i in range(len(df))]
    uses = multiplicity(df, {"method": "oversample"})
    assert (uses[(df["split"] != "train").to_numpy()] == 1).all()
    train = (df["split"] == "train").to_numpy()
    assert totals(df[train], uses[train]) == {0: 6, 1: 6}


def test_selection_depends_on_seed_not_on_row_order():
    df = frame({0: 20, 1: 4})
    a = pd.Series(multiplicity(df, {"method": "undersample", "seed": 1}), index=df["image_id"])
    rev = df.iloc[::-1].reset_index(drop=True)
    b = pd.Series(multiplicity(rev, {"method": "undersample", "seed": 1}), index=rev["image_id"])
    assert a.sort_index().equals(b.sort_index())
    c = pd.Series(multiplicity(df, {"method": "undersample", "seed": 2}), index=df["image_id"])
    assert not a.sort_index().equals(c.sort_index())


def test_kfold_refuses_to_drop_rows_but_oversamples():
    df = frame({0: 8, 1: 3}, fold=0)
    with pytest.raises(BalanceError, match="k-fold"):
        multiplicity(df, {"method": "undersample"})
    assert totals(df, multiplicity(df, {"method": "oversample"})) == {0: 8, 1: 8}


def test_unknown_method_is_an_error():
    with pytest.raises(BalanceError, match="must be one of"):
        multiplicity(frame({0: 2}), {"method": "smote"})
