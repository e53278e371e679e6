"""The params schema: every mistake a user made in params.yaml is one line naming the file and the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.core import params
from pipeline.core.schema import ParamsError, validate

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "params.yaml").read_text())


def edited(path: str, value, *, delete: str | None = None) -> dict:
    """The demo params with ``value`` set at the dotted ``path`` (and ``delete`` removed beside it)."""
    p = copy.deepcopy(BASE)
    *parents, key = path.split(".")
    node = p
    for k in parents:
        node = node[k]
    node[key] = value
    if delete:
        del node[delete]
    return p


@pytest.mark.parametrize(("path", "value", "message"), [
    ("ingest.kdef.angels", ["S"], "ingest.kdef.angels: unknown key (did you mean 'angles'?)"),
    ("ingest.defaults.chunk_sise", 3, "ingest.defaults.chunk_sise: unknown key (did you mean 'chunk_size'?)"),
    ("split.jaffe.protocl", "kfold", "split.jaffe.protocl: unknown key (did you mean 'protocol'?)"),
    ("ingest.defaults.drop_duplicates", "false", "ingest.defaults.drop_duplicates: input should be a valid boolean"),
    ("ingest.defaults.chunk_size", "abc", "ingest.defaults.chunk_size: input should be a valid integer"),
    ("ingest.defaults.chunk_size", -5, "ingest.defaults.chunk_size: input should be greater than or equal to 1"),
    ("ingest.defaults.chunk_size", 0, "ingest.defaults.chunk_size: input should be greater than or equal to 1"),
    ("align.jaffe.px", "96", "align.jaffe.px: input should be a valid integer, got '96'"),
    ("align.jaffe.size", 96, "align.jaffe.size: renamed to align.jaffe.px (DVC's run-cache ignores keys named 'size'"),
    ("train.ean.input.size", 44, "train.ean.input.size: renamed to train.ean.input.px"),
    ("ingest.defaults.png_level", 42, "ingest.defaults.png_level: input should be less than or equal to 9"),
    ("shard.defaults.shard_mb", -1, "shard.defaults.shard_mb: input should be greater than 0"),
    ("train.ean.epoch", 3, "train.ean.epoch: unknown key (did you mean 'epochs'?)"),
    ("train.ean.optimizer.lr", -1.0, "train.ean.optimizer.lr: input should be greater than 0"),
    ("align.jafe", {"px": 96}, "align.jafe: not a dataset (did you mean 'jaffe'?)"),
    ("evaluate.ten_crop", "yes", "evaluate.ten_crop: input should be a valid boolean"),
    ("flow.runner.kind", "ray", "flow.runner.kind: input should be 'threads' or 'dask'"),
    ("trian", {}, "trian: unknown section (did you mean 'train'?)"),
])
def test_each_mistake_is_one_line_naming_the_key(path, value, message):
    with pytest.raises(ParamsError) as err:
        validate(edited(path, value), "params.yaml")
    assert str(err.value).startswith(f"params.yaml: {message}")
    assert "\n" not in str(err.value)


def test_a_mistake_in_the_defaults_is_named_there_and_one_in_an_entry_there():
    with pytest.raises(ParamsError, match=r"align\.defaults\.margin: "):
        validate(edited("align.defaults.margin", "wide"))
    with pytest.raises(ParamsError, match=r"align\.kdef\.margin: "):
        validate(edited("align.kdef.margin", -1.0))


def test_runs_name_known_datasets():
    bad = edited("train.matrix.ean-jafe", {"model": "ean", "dataset": "jafe"})
    with pytest.raises(ParamsError, match=r"train\.matrix: dataset 'jafe' is not in `datasets` \(did you mean 'jaffe'\?\)"):
        validate(bad)


def test_the_committed_params_and_profiles_pass():
    from pipeline.profiles import compose

    validate(BASE)
    for name in ("paper", "ckplus48"):
        validate(yaml.safe_load(compose((ROOT / "params.yaml").read_text(), name, ROOT / "profiles")), name)


def test_load_checks_and_a_stage_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(edited("ingest.defaults.chunk_size", 0)))
    with pytest.raises(ParamsError, match=f"{bad}: ingest.defaults.chunk_size"):
        params.load(bad)
    code = main(["ingest", "jaffe", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                 "--params", str(bad), "--no-prefect"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"fer-pipeline ingest: error: {bad}: ingest.defaults.chunk_size: ")
    assert not (tmp_path / "out").exists()


def test_a_profile_with_a_mistake_is_refused_naming_the_overlay(tmp_path):
    from pipeline.profiles import ProfileError, compose

    (tmp_path / "typo.yaml").write_text("train:\n  ean: {epochs: '3'}\n")
    with pytest.raises(ProfileError, match=r"typo\.yaml: train\.ean\.epochs: input should be a valid integer"):
        compose((ROOT / "params.yaml").read_text(), "typo", tmp_path)
