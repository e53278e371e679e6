"""The shards read as they are by Hugging Face ``datasets``, DuckDB and pandas."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from crops_fixture import make_crops

from pipeline.core.labels import LABEL_NAMES
from pipeline.shard.build import Settings, build
from pipeline.shards.format import shard_files


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("formats")
    crops = make_crops(base / "aligned", "kdef", subjects=8, per_subject=1, channels=3, size=40)
    settings = Settings(split={"protocol": "ratio", "ratios": {"train": 0.5, "validation": 0.25, "test": 0.25}},
                        balance={"method": "none"},
                        augment={"preset": "f", "factor": 2, "presets": {"f": [{"transform": "HorizontalFlip", "p": 1.0}]}},
                        shard={"shard_mb": 0.02, "row_group_kb": 16})
    build("kdef", crops, base / "out", settings)
    return base / "out"


def test_hf_datasets_decodes_images_and_class_names(shards, tmp_path):
    datasets = pytest.importorskip("datasets")
    files = {s: [str(p) for p in shard_files(shards, s)] for s in ("train", "validation", "test")}
    ds = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "validation", "test"}
    train = ds["train"]
    assert train.features["label"].names == list(LABEL_NAMES)
    assert isinstance(train.features["image"], datasets.Image)
    first = train[0]
    assert first["image"].size == (40, 40) and first["image"].mode == "RGB"
    assert train.features["label"].int2str(first["label"]) == first["label_name"]
    assert sum(len(ds[s]) for s in ds) == sum(
        pq.ParquetFile(p).metadata.num_rows for p in shard_files(shards))


def test_hf_datasets_auto_splits_the_directory_by_file_names(shards, tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(str(shards), cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "validation", "test"}
    assert ds["test"].features["label"].names == list(LABEL_NAMES)
    assert all(p is None for p in ds["test"]["parent_id"])
    by_dir = datasets.load_dataset("parquet", data_dir=str(shards), cache_dir=str(tmp_path / "cache2"))
    assert {s: len(by_dir[s]) for s in by_dir} == {s: len(ds[s]) for s in ds}


def test_duckdb_reads_the_shards_directly(shards):
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(
        f"SELECT split, count(*) AS n, count(parent_id) AS derived, min(octet_length(image.bytes)) AS smallest "
        f"FROM read_parquet('{shards}/*.parquet') GROUP BY split ORDER BY split").fetchall()
    by_split = {r[0]: r[1:] for r in rows}
    assert set(by_split) == {"train", "validation", "test"}
    assert by_split["train"][1] * 2 == by_split["train"][0]
    assert by_split["test"][1] == 0 and min(r[2] for r in by_split.values()) > 0


def test_pandas_reads_the_shards_directly(shards):
    import pandas as pd

    df = pd.read_parquet(shard_files(shards, "validation")[0])
    assert list(df.columns) == ["image", "label", "label_name", "dataset", "subject", "split", "fold",
                                "image_id", "parent_id", "augmentation"]
    assert df["image"].iloc[0]["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    assert (df["split"] == "validation").all() and (df["fold"] == -1).all()
