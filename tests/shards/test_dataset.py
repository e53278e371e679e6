"""ShardDataset: selections by split and fold, labels, conversions, workers, caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from crops_fixture import make_crops
from torch.utils.data import DataLoader

from pipeline.shards.dataset import UNLABELLED, ConcatShards, ShardDataset, contiguous_labels, labels_present
from pipeline.shard.build import Settings, build
from pipeline.shards.format import shard_files

AUG = {"preset": "f", "factor": 2, "presets": {"f": [{"transform": "HorizontalFlip", "p": 1.0}]}}


def settings(split: dict) -> Settings:
    return Settings(split=split, balance={"method": "none"}, augment=AUG,
                    shard={"shard_mb": 0.02, "row_group_kb": 8, "chunk_rows": 8})


@pytest.fixture(scope="module")
def kfold(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("kfold")
    crops = make_crops(base / "in", "ckplus", subjects=10, per_subject=1, labels=(1, 3, 7))
    build("ckplus", crops, base / "out", settings({"protocol": "kfold", "k": 5, "seed": 0}))
    return base / "out"


@pytest.fixture(scope="module")
def ratio(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("ratio")
    crops = make_crops(base / "in", "kdef", subjects=8, per_subject=1, labels=(0, 5), channels=3, size=40)
    build("kdef", crops, base / "out", settings({"protocol": "ratio",
                                                 "ratios": {"train": 0.5, "validation": 0.25, "test": 0.25}}))
    return base / "out"


def test_contiguous_labels_map_the_unified_labels_present():
    names, mapping = contiguous_labels([7, 1, 3, 1])
    assert names == ["anger", "disgust", "surprise"] and mapping == {1: 0, 3: 1, 7: 2}
    assert contiguous_labels(["surprise", "anger"])[1] == {1: 0, 7: 1}


def test_split_selection_keeps_derived_rows_for_training_only(ratio):
    train = ShardDataset(ratio, "train", channels=3, size=40)
    originals = ShardDataset(ratio, "train", include_augmented=False, channels=3, size=40)
    val = ShardDataset(ratio, "validation", channels=3, size=40)
    assert len(train) == 2 * len(originals) and len(val) > 0
    assert train.classes == val.classes == ["neutral", "happiness"]
    assert labels_present(ratio) == [0, 5]
    x, y = val[0]
    assert x.shape == (3, 40, 40) and x.dtype == torch.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert y in (0, 1)


def test_fold_parts_are_subject_disjoint_complementary_and_test_has_originals_only(kfold):
    df = pd.concat([pq.read_table(p, columns=["image_id", "subject", "parent_id"]).to_pandas()
                    for p in shard_files(kfold)]).set_index("image_id")
    originals = set(df.index[df["parent_id"].isna()])
    for f in range(5):
        tr = ShardDataset(kfold, fold=f, part="train")
        te = ShardDataset(kfold, fold=f, part="test")
        tr_orig = ShardDataset(kfold, fold=f, part="train", include_augmented=False)
        assert len(tr) == 2 * len(tr_orig) and len(te) > 0
        assert set(te.image_ids) <= originals
        assert set(tr_orig.image_ids) | set(te.image_ids) == originals
        assert not set(df.loc[tr.image_ids, "subject"]) & set(df.loc[te.image_ids, "subject"])
    assert ShardDataset(kfold, fold=2, part="test").classes == ["anger", "disgust", "surprise"]


def test_fold_selection_on_a_dataset_without_folds_is_an_error(ratio):
    with pytest.raises(ValueError, match="no k-fold rows"):
        ShardDataset(ratio, fold=0, part="test")


def test_grey_colour_and_resize(ratio):
    grey = ShardDataset(ratio, "test", channels=1, size=24)
    colour = ShardDataset(ratio, "test", channels=3, size=(30, 20))
    assert grey[0][0].shape == (1, 24, 24) and colour[0][0].shape == (3, 30, 20)
    raw = ShardDataset(ratio, "test", channels=3, size=None)
    assert raw[0][0].shape == (3, 40, 40)
    assert not torch.equal(raw[0][0][0], raw[0][0][2])  # colour kept


def test_online_transform_and_normalisation(ratio):
    from torchvision.transforms import v2

    plain = ShardDataset(ratio, "test", channels=3, size=40)
    seen = []
    flip = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.ToDtype(torch.float32, scale=True)])
    flipped = ShardDataset(ratio, "test", channels=3, size=40, transform=lambda x: seen.append(x) or flip(x))
    assert torch.allclose(flipped[0][0], torch.flip(plain[0][0], dims=[2]))
    assert seen[0].dtype == torch.uint8 and seen[0].shape == (3, 40, 40)  # the transform gets the stored pixels
    norm = ShardDataset(ratio, "test", channels=3, size=40, mean=[0.5] * 3, std=[0.25] * 3)
    assert torch.allclose(norm[0][0], (plain[0][0] - 0.5) / 0.25)


def test_views_decode_each_image_once(ratio, monkeypatch):
    import pipeline.shards.dataset as shard_dataset

    base = ShardDataset(ratio, "test", channels=1, size=None)
    plain = base.view(transform=lambda x: x, cache_decoded=True)
    first = [plain[i][0] for i in range(len(plain))]
    calls = []
    real = shard_dataset.decode_image
    monkeypatch.setattr(shard_dataset, "decode_image", lambda data, channels: calls.append(channels) or real(data, channels))
    doubled = base.view(transform=lambda x: x * 2, cache_decoded=True)  # another transform, the same rows
    assert all(torch.equal(doubled[i][0], first[i] * 2) for i in range(len(doubled))) and calls == []
    colour = base.view(transform=lambda x: x, channels=3, cache_decoded=True)
    assert colour[0][0].shape[0] == 3 and calls == [3]  # other channels: decoded for them


def test_a_view_in_a_checkpoints_classes_follows_its_order_and_refuses_others(ratio):
    from pipeline.core.labels import LABEL_NAMES

    ds = ShardDataset(ratio, "test", channels=3, size=None)
    extra = next(n for n in LABEL_NAMES if n not in ds.classes)
    wider = ds.view(classes=[extra, *ds.classes])  # a model with one more output
    assert wider.classes == [n for n in LABEL_NAMES if n in {extra, *ds.classes}]  # in unified order
    assert [wider.classes[t] for t in wider.targets] == [ds.classes[t] for t in ds.targets]
    assert wider.targets != ds.targets or wider.classes.index(extra) == len(ds.classes)
    assert wider.unified_label(0) == ds.unified_label(0)
    with pytest.raises(ValueError, match=f"labels \\['{ds.classes[-1]}'\\] are not among the classes"):
        ds.view(classes=ds.classes[:-1])


def test_an_albumentations_transform_is_a_clear_error(ratio):
    import albumentations as A

    with pytest.raises(TypeError, match="not an albumentations transform"):
        ShardDataset(ratio, "test", transform=A.HorizontalFlip(p=1.0))


def test_view_and_subset_share_the_rows(ratio):
    ds = ShardDataset(ratio, "train", channels=3, size=None)
    grey = ds.view(channels=1, transform=lambda x: x)
    assert grey[3][0].shape[0] == 1 and grey[3][0].dtype == torch.uint8 and grey[3][1] == ds[3][1]
    assert ds[3][0].shape[0] == 3  # the original is unchanged
    part = ds.subset([5, 2])
    assert len(part) == 2 and torch.equal(part[0][0], ds[5][0]) and part.targets == [ds.targets[5], ds.targets[2]]
    assert part.png(1) == ds.png(2) and part.unified_label(0) == ds.unified_label(5)
    assert len(ds.subset([])) == 0 and ds.subset([]).classes == ds.classes


def test_unlabelled_views_chain_with_labelled_rows_in_loader_order(ratio, kfold):
    labelled = ShardDataset(ratio, "train", channels=1, size=32)
    other = ShardDataset(kfold, fold=0, part="test", channels=1, size=32)
    faces = other.view(unlabelled=True)
    assert faces.targets == [UNLABELLED] * len(other) and other.targets != faces.targets  # the original keeps its
    assert faces.unified_label(0) == UNLABELLED and torch.equal(faces[0][0], other[0][0])
    both = ConcatShards([labelled, faces])
    order = [len(labelled), 0, len(labelled) + 1, 2]  # parts interleaved, as a shuffled loader asks
    got = both.__getitems__(order)
    expected = [faces[0], labelled[0], faces[1], labelled[2]]
    assert [y for _, y in got] == [y for _, y in expected] == [UNLABELLED, labelled.targets[0], UNLABELLED,
                                                               labelled.targets[2]]
    assert all(torch.equal(x, e) for (x, _), (e, _) in zip(got, expected))
    assert both.targets == labelled.targets + faces.targets
    flipped = both.view(transform=lambda x: x.flip(-1))
    raw = other.view(transform=lambda x: x)[0][0]  # the uint8 tensor a transform receives
    assert isinstance(flipped, ConcatShards) and torch.equal(flipped[len(labelled)][0], raw.flip(-1))


def test_row_group_reads_equal_the_in_memory_cache(kfold):
    cached = ShardDataset(kfold, fold=1, part="train", cache_decoded=True)
    assert ShardDataset(kfold, fold=1, part="train").cache_decoded  # small: "auto" caches
    streamed = ShardDataset(kfold, fold=1, part="train", cache_mb=0)
    assert not streamed.cache_decoded
    for i in np.random.default_rng(0).permutation(len(cached))[:40]:
        a, b = cached[i], streamed[i]
        assert torch.equal(a[0], b[0]) and a[1] == b[1]
        assert torch.equal(cached[i][0], a[0])  # served from the decoded cache
    assert streamed._png is None and len(streamed._groups) <= 4


def test_dataloader_with_two_workers_yields_the_same_samples(kfold):
    """Spawned workers get the dataset pickled: no open files, no caches, the same samples.

    (Not ``fork`` here: once a Prefect flow has run in the process — earlier tests do — forked
    DataLoader workers exit with code 1 at shutdown, whatever the dataset; see the test below
    for what a forked worker does with the parent's files.)
    """
    ds = ShardDataset(kfold, fold=3, part="train", size=32)

    def collect(workers: int):
        xs, ys = [], []
        kw = {"multiprocessing_context": "spawn"} if workers else {}
        for x, y in DataLoader(ds, batch_size=7, num_workers=workers, **kw):
            xs.append(x)
            ys.append(y)
        return torch.cat(xs), torch.cat(ys)

    x0, y0 = collect(0)
    assert ds._pfiles  # the parent has files open (and caches) ...
    x2, y2 = collect(2)  # ... which the workers do not inherit
    assert len(x0) == len(ds) and torch.equal(x0, x2) and torch.equal(y0, y2)


def test_a_forked_worker_reopens_the_files_instead_of_sharing_the_parents(kfold, monkeypatch):
    import os

    ds = ShardDataset(kfold, fold=0, part="test", cache_mb=0, cache_decoded=False)
    first = ds[0][0]
    parent_handle = ds._pfiles[ds._file[0]]
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as seen from a forked child
    assert torch.equal(ds[0][0], first)
    assert ds._pfiles[ds._file[0]] is not parent_handle and ds._pid == -1
