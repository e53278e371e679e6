"""Stage ``cv``: subject-independent k-fold cross-validation (``pipeline.evaluation.crossval``).

On tiny drawn-face k-fold shards (4 folds of 12 subjects): every fold trains and tests its own
model, the summary is the mean ± std of the per-fold scores and the pooled confusion of all test
rows, a finished fold is reused, and the stage writes its table and metrics.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from train_helpers import tiny_shards, write_params

from pipeline.cli import main
from pipeline.evaluation.crossval import cross_validate, fold_roles, shard_rows
from pipeline.training.runs import DISTILLED

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = {"models": ["ean"], "distill": True, "ten_crop": True, "validation_fold": False, "workers": 1}


@pytest.fixture(scope="module")
def kfold(tmp_path_factory):
    base = tmp_path_factory.mktemp("cv")
    processed = tiny_shards(base, "jaffe", "kfold")
    params = write_params(base / "params.yaml")
    doc = yaml.safe_load(params.read_text())
    doc["cv"] = {"datasets": ["jaffe"], "defaults": dict(SETTINGS), "jaffe": {}}
    params.write_text(yaml.safe_dump(doc, sort_keys=False))
    return processed / "jaffe", params


@pytest.fixture(scope="module")
def result(kfold, tmp_path_factory):
    root, params = kfold
    return cross_validate(root, "jaffe", dict(SETTINGS), tmp_path_factory.mktemp("models"), str(params),
                          log=lambda _: None)


def test_every_fold_tests_its_own_subjects_once(kfold, result):
    root, _ = kfold
    rows = shard_rows(root)
    tests = [fold_roles(rows, f, False)["test"] for f in range(result["k"])]
    assert result["k"] == 4 and result["folds"] == [0, 1, 2, 3]
    assert sum(len(t) for t in tests) == int(rows["parent_id"].isna().sum())  # the folds partition the originals
    for f, test in enumerate(tests):
        assert not set(test["subject"]) & set(fold_roles(rows, f, False)["train"]["subject"])
    for name in ("ean", DISTILLED):
        s = result["models"][name]
        assert sum(s["pooled"]["confusion"]["counts"][i][j] for i in range(3) for j in range(3)) == len(rows[
            rows["parent_id"].isna()])


def test_the_summary_is_the_mean_and_spread_of_the_folds(result):
    for name in ("ean", DISTILLED):
        s = result["models"][name]
        accs = np.array(s["accuracy_per_fold"])
        assert len(accs) == 4  # per fold, rounded to 6 places
        assert s["mean"] == pytest.approx(accs.mean(), abs=1e-6) and s["std"] == pytest.approx(accs.std(), abs=1e-6)
        assert all(0.0 <= a <= 1.0 for a in accs)
    assert list(result["models"]) == ["ean", DISTILLED]  # the distilled EAN right after its teacher
    assert result["classes"] == ["anger", "happiness", "surprise"]


def test_finished_folds_are_reused_not_retrained(kfold, result, tmp_path, monkeypatch):
    import pipeline.training.train_model as train_model

    root, params = kfold
    models = tmp_path / "models"
    first = cross_validate(root, "jaffe", {**SETTINGS, "folds": [1]}, models, str(params), log=lambda _: None)
    monkeypatch.setattr(train_model, "train_model", lambda *a, **k: pytest.fail("a finished fold was retrained"))
    again = cross_validate(root, "jaffe", {**SETTINGS, "folds": [1]}, models, str(params), log=lambda _: None)
    assert again["models"]["ean"]["accuracy_per_fold"] == first["models"]["ean"]["accuracy_per_fold"]
    assert first["models"]["ean"]["accuracy_per_fold"] == [result["models"]["ean"]["accuracy_per_fold"][1]]


def test_stage_writes_metrics_and_table_and_narrows_models_with_only(kfold, tmp_path, capsys):
    root, params = kfold
    code = main(["cv", "jaffe", "--data", str(root.parent), "--models", str(tmp_path / "models"),
                 "--out", str(tmp_path / "eval"), "--only", DISTILLED, "--params", str(params)])
    assert code == 0
    out = tmp_path / "eval" / "jaffe"
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["models"]) == ["ean", DISTILLED]  # --only ean_distilled brings its teacher
    table = (out / "results.md").read_text()
    assert "| ean |" in table and f"| {DISTILLED} |" in table
    assert (out / f"confusion-{DISTILLED}.png").read_bytes()[:4] == b"\x89PNG"
    assert f"| {DISTILLED} |" in capsys.readouterr().out


def test_a_ratio_dataset_is_refused(tmp_path_factory):
    base = tmp_path_factory.mktemp("ratio")
    processed = tiny_shards(base, "ckplus", "ratio")
    with pytest.raises(ValueError, match="not k-fold shards"):
        cross_validate(processed / "ckplus", "ckplus", dict(SETTINGS), base / "models", str(write_params(
            base / "params.yaml")), log=lambda _: None)


def test_co_teachers_are_the_folds_own_runs(kfold, tmp_path, monkeypatch):
    import pipeline.training.distill_rounds as distill_rounds
    from pipeline.core.schema import ParamsError

    root, params = kfold
    doc = yaml.safe_load(params.read_text())
    doc["train"]["ean_b"] = {"arch": "ean", "seed": 1}  # a second model of the folds: EAN of another seed
    doc["distill"]["jaffe"] = {"co_teachers": ["ean_b"]}
    changed = tmp_path / "params.yaml"
    changed.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ParamsError, match=r"distill.jaffe.co_teachers: 'ean_b' is not trained in the folds"):
        cross_validate(root, "jaffe", dict(SETTINGS), tmp_path / "models", str(changed), log=lambda _: None)
    seen = {}
    real = distill_rounds.distill

    def spy(teacher_path, data, settings, out_dir, **kwargs):
        seen[data.fold] = kwargs["co_teachers"]
        assert all(p.is_file() for p in kwargs["co_teachers"])  # trained before the rounds start
        return real(teacher_path, data, settings, out_dir, **kwargs)

    monkeypatch.setattr(distill_rounds, "distill", spy)
    result = cross_validate(root, "jaffe", {**SETTINGS, "models": ["ean", "ean_b"], "folds": [0, 2]},
                            tmp_path / "models", str(changed), log=lambda _: None)
    assert seen == {f: [tmp_path / "models" / f"ean_b-fold{f}" / "checkpoint.pt"] for f in (0, 2)}
    assert list(result["models"]) == ["ean", DISTILLED, "ean_b"]


def test_a_transfer_set_comes_from_another_processed_dataset(kfold, tmp_path, monkeypatch):
    import shutil

    import pipeline.training.distill_rounds as distill_rounds
    from pipeline.core.schema import ParamsError

    shared, params = kfold
    root = tmp_path / "processed" / "jaffe"  # a copy: the module's shards stay alone in their directory
    shutil.copytree(shared, root)
    doc = yaml.safe_load(params.read_text())
    changed = tmp_path / "params.yaml"
    for source, problem in (("jaffe", "is the distilled dataset"), ("kdef", "no training shards of 'kdef'")):
        doc["distill"]["jaffe"] = {"transfer": {"source": source, "rows": 4}}
        changed.write_text(yaml.safe_dump(doc, sort_keys=False))
        with pytest.raises(ParamsError, match=f"distill.jaffe.transfer.source: .*{problem}"):
            cross_validate(root, "jaffe", dict(SETTINGS), tmp_path / "models", str(changed), log=lambda _: None)
    # the source's shards beside the dataset's (data/processed/<source>): every fold's rounds draw from them
    tiny_shards(tmp_path, "kdef", "ratio", labels=(0, 4))
    seen = {}
    real = distill_rounds.distill

    def spy(teacher_path, data, settings, out_dir, **kwargs):
        seen[data.fold] = (kwargs["transfer"].faces.root, kwargs["transfer"].per_round)
        return real(teacher_path, data, settings, out_dir, **kwargs)

    monkeypatch.setattr(distill_rounds, "distill", spy)
    cross_validate(root, "jaffe", {**SETTINGS, "folds": [1]}, tmp_path / "models", str(changed), log=lambda _: None)
    assert seen == {1: (root.parent / "kdef", 4)}
