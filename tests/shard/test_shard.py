"""The shard stage end to end on small drawn crops: determinism, counts, augmentation, files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from crops_fixture import make_crops

from pipeline.shard import augment
from pipeline.shard.build import Settings, ShardInputError, _decode, _encode, build
from pipeline.shards.format import SHARD_RE, shard_files

PRESET = [{"transform": "Rotate", "limit": 15, "p": 0.8},
          {"transform": "RandomBrightnessContrast", "p": 0.5},
          {"transform": "HorizontalFlip", "p": 0.5},
          {"transform": "Erasing", "p": 0.5}]


def settings(split=None, balance=None, aug=None, shard=None) -> Settings:
    return Settings(
        split={"protocol": "ratio", "seed": 0, "ratios": {"train": 0.5, "validation": 0.25, "test": 0.25},
               **(split or {})},
        balance={"method": "none", "seed": 0, **(balance or {})},
        augment={"preset": "p", "factor": 2, "seed": 0, "presets": {"p": PRESET}, **(aug or {})},
        shard={"shard_mb": 256, "row_group_kb": 64, "chunk_rows": 16, **(shard or {})})


def digest(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def rows(out: Path) -> pd.DataFrame:
    return pd.concat([pq.read_table(p).to_pandas() for p in shard_files(out)], ignore_index=True)


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return make_crops(tmp_path_factory.mktemp("aligned") / "ckplus", "ckplus", subjects=8, per_subject=2)


def test_identical_inputs_give_byte_identical_shards_and_a_new_seed_changes_them(crops, tmp_path):
    build("ckplus", crops, tmp_path / "a", settings())
    build("ckplus", crops, tmp_path / "b", settings())
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    # the same rows in another order in crops.parquet: the same bytes (stream sorted by image_id)
    shuffled = make_crops(tmp_path / "shuffled", "ckplus", subjects=8, per_subject=2, shuffle_seed=5)
    build("ckplus", shuffled, tmp_path / "c", settings())
    shards = {k: v for k, v in digest(tmp_path / "a").items() if k.endswith(".parquet")}
    assert shards == {k: v for k, v in digest(tmp_path / "c").items() if k.endswith(".parquet")}
    build("ckplus", crops, tmp_path / "d", settings(aug={"seed": 1}))
    assert digest(tmp_path / "d")["train-00000-of-00001.parquet"] != shards["train-00000-of-00001.parquet"]
    build("ckplus", crops, tmp_path / "e", settings(split={"seed": 1}))
    assert digest(tmp_path / "e") != digest(tmp_path / "a")


def test_validation_and_test_are_never_augmented_and_training_grows_by_the_factor(crops, tmp_path):
    stats = build("ckplus", crops, tmp_path / "out", settings(aug={"factor": 3}))
    df = rows(tmp_path / "out")
    evaluation = df[df["split"] != "train"]
    assert len(evaluation) and evaluation["parent_id"].isna().all() and evaluation["augmentation"].isna().all()
    train = df[df["split"] == "train"]
    originals = train[train["parent_id"].isna()]
    assert len(train) == 3 * len(originals)
    assert stats["splits"]["train"]["derived"] == 2 * len(originals)
    derived = train[train["parent_id"].notna()]
    assert set(derived["parent_id"]) == set(originals["image_id"])
    # a derived row carries its parent's label, subject and split
    parent = originals.set_index("image_id")
    for col in ("label", "subject", "split", "fold"):
        assert (derived[col].to_numpy() == parent.loc[derived["parent_id"], col].to_numpy()).all()
    # no subject on two sides, derived rows included
    assert df.groupby("subject")["split"].nunique().max() == 1


def test_augmentation_record_replays_to_the_stored_image(crops, tmp_path):
    build("ckplus", crops, tmp_path / "out", settings())
    df = rows(tmp_path / "out")
    by_id = df.set_index("image_id")
    derived = df[df["parent_id"].notna()].head(6)
    pipeline = augment.build_pipeline(PRESET)
    changed = 0
    for _, r in derived.iterrows():
        rec = json.loads(r["augmentation"])
        assert rec["preset"] == "p" and rec["copy"] == 1 and rec["seed"] == augment.copy_seed(0, r["parent_id"], 1)
        parent = _decode(by_id.loc[r["parent_id"], "image"]["bytes"])
        img, applied = augment.augment_image(pipeline, parent, rec["seed"])
        assert applied == rec["applied"]
        assert _encode(img, 6) == r["image"]["bytes"]
        assert {name for name, _ in applied} <= {t["transform"] for t in PRESET}
        changed += not np.array_equal(img, parent)
    assert changed > 0


def test_balancing_then_augmentation_gives_exact_class_totals(tmp_path):
    crops = make_crops(tmp_path / "in", "kdef", subjects=10, labels=(0, 4, 5),
                       counts={0: 30, 4: 10, 5: 17})
    cfg = settings(split={"ratios": {"train": 0.6, "validation": 0.2, "test": 0.2}},
                   balance={"method": "target_per_class", "target": 12}, aug={"factor": 2})
    stats = build("kdef", crops, tmp_path / "out", cfg)
    train = stats["splits"]["train"]
    for c in ("neutral", "fear", "happiness"):
        assert train["originals_per_class"].get(c, 0) + train["derived_per_class"].get(c, 0) == 24
    acc = stats["accounting"]
    assert acc["input_rows"] == 57 == acc["kept"] + acc["dropped_by_balance"]
    df = rows(tmp_path / "out")
    assert len(df[df["parent_id"].isna()]) == acc["kept"]


def test_balancing_copies_without_a_preset_are_exact_copies(tmp_path):
    crops = make_crops(tmp_path / "in", "kdef", subjects=4, labels=(0, 5), counts={0: 12, 5: 4})
    cfg = settings(split={"ratios": {"train": 1.0, "validation": 0.0, "test": 0.0}},
                   balance={"method": "oversample"}, aug={"preset": "none", "factor": 1})
    build("kdef", crops, tmp_path / "out", cfg)
    df = rows(tmp_path / "out")
    assert df["label"].value_counts().to_dict() == {0: 12, 5: 12}
    parents = df[df["parent_id"].isna()].set_index("image_id")
    for _, r in df[df["parent_id"].notna()].iterrows():
        assert r["image"]["bytes"] == parents.loc[r["parent_id"], "image"]["bytes"]
        assert json.loads(r["augmentation"])["applied"] == []


def test_kfold_rows_all_carry_their_fold_and_derived_rows_the_parents(tmp_path):
    crops = make_crops(tmp_path / "in", "ckplus", subjects=10, per_subject=1)
    stats = build("ckplus", crops, tmp_path / "out", settings(split={"protocol": "kfold", "k": 5}))
    df = rows(tmp_path / "out")
    assert set(df["fold"]) == set(range(5)) and (df["split"] == "train").all()
    originals = df[df["parent_id"].isna()].groupby("subject")["fold"].nunique()
    assert originals.max() == 1
    assert set(stats["folds"]) == {str(f) for f in range(5)}


def test_small_targets_give_several_shards_with_small_row_groups_and_hf_names(crops, tmp_path):
    build("ckplus", crops, tmp_path / "out", settings(shard={"shard_mb": 0.03, "row_group_kb": 8}))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert {"README.md", "stats.json"} <= set(names)
    shards = [n for n in names if n.endswith(".parquet")]
    assert all(SHARD_RE.match(n) for n in shards)
    train = [n for n in shards if n.startswith("train-")]
    assert len(train) > 1 and train[-1].endswith(f"-of-{len(train):05d}.parquet")
    meta = pq.ParquetFile(tmp_path / "out" / train[0]).metadata
    assert meta.num_row_groups > 1
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_dataset_card_has_front_matter_counts_params_and_input_hash(crops, tmp_path):
    stats = build("ckplus", crops, tmp_path / "out", settings())
    text = (tmp_path / "out" / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert [c["split"] for c in front["configs"][0]["data_files"]] == list(stats["splits"])
    assert {s["name"]: s["num_examples"] for s in front["dataset_info"]["splits"]} == \
        {k: v["rows"] for k, v in stats["splits"].items()}
    sha = hashlib.sha256((crops / "crops.parquet").read_bytes()).hexdigest()
    assert sha in text and json.loads((tmp_path / "out" / "stats.json").read_text())["input"]["sha256"] == sha
    assert "| train |" in text and "Rotate" in text


def test_bad_input_names_the_file_and_the_problem(tmp_path):
    with pytest.raises(ShardInputError, match=r"crops.parquet: not found"):
        build("ckplus", tmp_path / "missing", tmp_path / "out", settings())
    crops = make_crops(tmp_path / "in", "ckplus", subjects=2, per_subject=1)
    t = pq.read_table(crops / "crops.parquet")
    pq.write_table(t.set_column(t.schema.get_field_index("label_name"), "label_name",
                                pa.array(["happiness"] * t.num_rows)), crops / "crops.parquet")
    with pytest.raises(ShardInputError, match=r"crops.parquet: .* has label 1 but label_name 'happiness'"):
        build("ckplus", crops, tmp_path / "out", settings())
    assert not (tmp_path / "out").exists()


def test_cli_runs_the_stage_with_params_from_the_file(crops, tmp_path, monkeypatch):
    from pipeline.cli import main

    params = {"split": {"defaults": {"protocol": "ratio", "ratios": {"train": 0.5, "validation": 0.25, "test": 0.25}},
                        "ckplus": {"protocol": "kfold", "k": 4}},
              "balance": {"defaults": {"method": "oversample"}},
              "augment": {"defaults": {"preset": "none", "factor": 1}},
              "shard": {"defaults": {"chunk_rows": 8}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("FER_PARAMS", str(tmp_path / "params.yaml"))
    assert main(["shard", "ckplus", "--aligned", str(crops), "--out", str(tmp_path / "out"), "--no-progress",
                 "--no-prefect"]) == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["params"]["split"]["k"] == 4 and set(stats["folds"]) == {"0", "1", "2", "3"}


def test_cli_reports_bad_settings_as_an_error(crops, tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    params = {s: {"defaults": {}} for s in ("balance", "augment", "shard")}
    params["split"] = {"defaults": {"protocol": "kfold", "k": 9}}  # 8 subjects
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("FER_PARAMS", str(tmp_path / "params.yaml"))
    assert main(["shard", "ckplus", "--aligned", str(crops), "--out", str(tmp_path / "out"), "--no-prefect"]) == 2
    assert "k=9 folds but only 8 subjects" in capsys.readouterr().err


@pytest.mark.slow
def test_prefect_run_gives_the_same_bytes(crops, tmp_path, monkeypatch):
    """The stage's default path runs chunks as Prefect tasks; the output equals the in-process one."""
    from prefect.testing.utilities import prefect_test_harness

    from pipeline.cli import main

    params = {"split": {"defaults": {"protocol": "ratio", "ratios": {"train": 0.5, "validation": 0.25, "test": 0.25}}},
              "balance": {"defaults": {"method": "oversample"}},
              "augment": {"defaults": {"preset": "p", "factor": 2, "presets": {"p": PRESET}}},
              "shard": {"defaults": {"chunk_rows": 6, "window_chunks": 2}}}  # 6 chunks in 3 flow runs
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("FER_PARAMS", str(tmp_path / "params.yaml"))
    base = ["shard", "ckplus", "--aligned", str(crops), "--no-progress"]
    assert main(base + ["--out", str(tmp_path / "plain"), "--no-prefect"]) == 0
    with prefect_test_harness(server_startup_timeout=180):  # the shared 2-core machine is slow to start it
        assert main(base + ["--out", str(tmp_path / "prefect")]) == 0
    assert digest(tmp_path / "plain") == digest(tmp_path / "prefect")
