"""Split protocols: subject independence, k-fold errors, source mapping, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.shard.splits import SplitError, assert_subject_independent, assign_splits


def frame(subjects: int, per: int = 3, labels=(0, 1, 2, 3), subject_none: bool = False) -> pd.DataFrame:
    rows = []
    for s in range(subjects):
        for lab in labels:
            for j in range(per):
                rows.append({"image_id": f"d/S{s:03d}_{lab}_{j}", "label": lab,
                             "subject": None if subject_none else f"S{s:03d}", "source_split": None})
    return pd.DataFrame(rows)


def test_kfold_is_subject_independent_and_covers_every_row():
    df = assign_splits(frame(23), {"protocol": "kfold", "k": 10, "seed": 1}, "ckplus")
    assert set(df["fold"]) == set(range(10))
    assert (df["split"] == "train").all()
    assert df.groupby("subject")["fold"].nunique().max() == 1
    # stratified: every fold holds every label
    assert (df.groupby("fold")["label"].nunique() == 4).all()


def test_kfold_with_more_folds_than_subjects_is_a_clear_error():
    with pytest.raises(SplitError, match=r"k=11 folds but only 10 subjects"):
        assign_splits(frame(10), {"protocol": "kfold", "k": 11}, "jaffe")
    df = assign_splits(frame(10), {"protocol": "kfold", "k": 10}, "jaffe")  # leave-one-subject-out
    assert df.groupby("fold")["subject"].nunique().eq(1).all()


@pytest.mark.parametrize("ratios", [{"train": 0.7, "validation": 0.2, "test": 0.1},
                                    {"train": 0.8, "validation": 0.0, "test": 0.2}])
def test_ratio_split_is_subject_independent_with_the_asked_proportions(ratios):
    df = assign_splits(frame(40), {"protocol": "ratio", "ratios": ratios, "seed": 0}, "kdef")
    assert (df["fold"] == -1).all()
    per_subject = df.groupby("subject")["split"].nunique()
    assert per_subject.max() == 1
    subjects = df.groupby("split")["subject"].nunique()
    for split, frac in ratios.items():
        assert subjects.get(split, 0) == round(frac * 40)


def test_splits_do_not_depend_on_row_order_and_change_with_the_seed():
    base = frame(20)
    cfg = {"protocol": "kfold", "k": 5, "seed": 3}
    a = assign_splits(base, cfg).set_index("image_id")["fold"]
    shuffled = base.sample(frac=1.0, random_state=7)
    b = assign_splits(shuffled, cfg).set_index("image_id")["fold"]
    assert a.sort_index().equals(b.sort_index())
    c = assign_splits(base, {**cfg, "seed": 4}).set_index("image_id")["fold"]
    assert not a.sort_index().equals(c.sort_index())


def test_source_protocol_maps_native_splits_and_carves_a_stratified_validation_part():
    df = frame(1, per=50, subject_none=True)
    df["source_split"] = np.where(np.arange(len(df)) % 5 == 0, "test", "train")
    out = assign_splits(df, {"protocol": "source", "source_map": {"train": "train", "test": "test"},
                             "val_fraction": 0.25, "seed": 0}, "rafdb")
    assert (out.loc[df["source_split"] == "test", "split"] == "test").all()
    was_train = out[df["source_split"] == "train"]
    val = was_train[was_train["split"] == "validation"]
    assert len(val) == round(0.25 * len(was_train))
    counts = val["label"].value_counts()
    assert counts.max() - counts.min() <= 1  # stratified


def test_source_protocol_rejects_unmapped_values():
    df = frame(1, subject_none=True)
    df["source_split"] = "Training"
    with pytest.raises(SplitError, match="not in split.source_map"):
        assign_splits(df, {"protocol": "source", "source_map": {"PublicTest": "validation"}}, "fer2013")


def test_rows_without_subject_are_their_own_group():
    df = assign_splits(frame(1, per=10, subject_none=True),
                       {"protocol": "ratio", "ratios": {"train": 0.5, "validation": 0.0, "test": 0.5}})
    assert df["split"].value_counts().to_dict() == {"train": 20, "test": 20}


def test_leak_detector_catches_a_subject_on_two_sides():
    df = assign_splits(frame(10), {"protocol": "ratio", "ratios": {"train": 0.7, "validation": 0.2, "test": 0.1}})
    assert_subject_independent(df)
    df.loc[df.index[0], "split"] = "test" if df.loc[df.index[0], "split"] != "test" else "train"
    with pytest.raises(SplitError, match="more than one side"):
        assert_subject_independent(df)


def test_unknown_protocol_is_an_error():
    with pytest.raises(SplitError, match="protocol must be one of"):
        assign_splits(frame(3), {"protocol": "random"})
