"""Training: the CLI stage's outputs, determinism, resuming, k-fold roles, recipe variants."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import RECIPE, tiny_shards, write_params

from pipeline.cli import main
from pipeline.training.data import load_split_data
from pipeline.training.train_model import train_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ratio_data(tmp_path_factory):
    return tiny_shards(tmp_path_factory.mktemp("ratio"), "ckplus", "ratio")


@pytest.fixture(scope="module")
def kfold_data(tmp_path_factory):
    return tiny_shards(tmp_path_factory.mktemp("kfold"), "jaffe", "kfold")


def test_train_cli_writes_checkpoint_and_dvclive_history(ratio_data, tmp_path):
    params = write_params(tmp_path / "params.yaml", ean={"epochs": 3},
                          ean_noatt={"arch": "ean", "epochs": 1, "model_args": {"attention": False}})
    assert main(["train", "--model", "ean", "--dataset", "ckplus", "--data", str(ratio_data),
                 "--out", str(tmp_path / "models"), "--params", str(params)]) == 0
    run = tmp_path / "models" / "ean-ckplus"
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["model"] == "ean" and ckpt["label_names"] == ["anger", "happiness", "surprise"]
    assert ckpt["label_ids"] == [1, 5, 7] and ckpt["in_chans"] == 1 and ckpt["recipe"]["epochs"] == 3
    assert 1 <= ckpt["best_epoch"] <= 3 and len(ckpt["params_hash"]) == 16
    assert not (run / "last.pt").exists()  # removed once the checkpoint is written
    summary = json.loads((run / "dvclive" / "metrics.json").read_text())
    assert summary["best"]["val_acc"] == pytest.approx(ckpt["val_acc"])
    history = (run / "dvclive" / "plots" / "metrics" / "val" / "acc.tsv").read_text().splitlines()
    assert history[0] == "step\tacc" and len(history) == 1 + 3
    # an ablation recipe: same network family, variant knobs from model_args
    assert main(["train", "--model", "ean_noatt", "--dataset", "ckplus", "--data", str(ratio_data),
                 "--out", str(tmp_path / "models"), "--params", str(params)]) == 0
    variant = torch.load(tmp_path / "models" / "ean_noatt-ckplus" / "checkpoint.pt", weights_only=False)
    assert variant["model"] == "ean" and variant["run_model"] == "ean_noatt"
    n_att = sum(v.numel() for v in ckpt["state_dict"].values())
    n_plain = sum(v.numel() for v in variant["state_dict"].values())
    assert n_plain < n_att  # the ECA weights are gone


def test_same_seed_gives_identical_results_on_cpu(ratio_data, tmp_path):
    data = load_split_data(ratio_data / "ckplus")
    a, _ = train_model(data, "ean", dict(RECIPE), tmp_path / "a", dataset="ckplus")
    b, _ = train_model(data, "ean", dict(RECIPE), tmp_path / "b", dataset="ckplus")
    assert a.history == b.history
    assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)
    c, _ = train_model(data, "ean", {**RECIPE, "seed": 1}, tmp_path / "c", dataset="ckplus")
    assert c.history != a.history  # the seed matters


def test_channels_last_training_repeats_and_its_checkpoint_loads_anywhere(ratio_data, tmp_path):
    from pipeline.training.checkpoint import load_model

    data = load_split_data(ratio_data / "ckplus")
    recipe = {**RECIPE, "channels_last": True}
    a, _ = train_model(data, "ean", recipe, tmp_path / "a", dataset="ckplus")
    b, _ = train_model(data, "ean", recipe, tmp_path / "b", dataset="ckplus")
    assert a.history == b.history
    assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)
    conv = next(v for v in a.best_state.values() if v.ndim == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)  # it did train in NHWC
    model, _ = load_model(tmp_path / "a" / "checkpoint.pt", "cpu")  # a plain NCHW model: same values
    assert all(torch.equal(v, a.best_state[k]) for k, v in model.state_dict().items())


def test_interrupted_training_resumes_to_the_same_weights(ratio_data, tmp_path):
    data = load_split_data(ratio_data / "ckplus")
    recipe = {**RECIPE, "epochs": 3}
    full, _ = train_model(data, "ean", recipe, tmp_path / "full", dataset="ckplus")
    with pytest.raises(KeyboardInterrupt):
        train_model(data, "ean", recipe, tmp_path / "cut", dataset="ckplus", stop_after_epoch=1)
    assert (tmp_path / "cut" / "last.pt").is_file() and not (tmp_path / "cut" / "checkpoint.pt").exists()
    resumed, _ = train_model(data, "ean", recipe, tmp_path / "cut", dataset="ckplus")
    assert resumed.resumed_from == 1
    assert resumed.history == full.history
    assert all(torch.equal(full.best_state[k], resumed.best_state[k]) for k in full.best_state)
    # a changed recipe does not resume from a foreign last.pt
    with pytest.raises(KeyboardInterrupt):
        train_model(data, "ean", recipe, tmp_path / "other", dataset="ckplus", stop_after_epoch=1)
    fresh, _ = train_model(data, "ean", {**recipe, "seed": 3}, tmp_path / "other", dataset="ckplus")
    assert fresh.resumed_from == 0


def test_fit_with_ema_keeps_the_moving_average_of_the_weights_after_each_step(tmp_path):
    from pipeline.training.loop import fit

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    batches = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1])) for _ in range(2)]
    seen = []

    def loss_fn(m, x, y):
        seen.append({k: v.detach().clone() for k, v in m.state_dict().items()})
        logits = m(x)
        return torch.nn.functional.cross_entropy(logits, y), logits

    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    result = fit(model, loss_fn, optimizer, None, batches, None, epochs=1, device=torch.device("cpu"),
                 run_dir=tmp_path, run_key="k", generator=torch.Generator(), ema_decay=0.75)
    after_first, after_second = seen[1], model.state_dict()  # the weights after each optimizer step
    for k, v in result.best_state.items():  # the average starts at the first step's weights
        assert torch.allclose(v, 0.75 * after_first[k] + 0.25 * after_second[k])
        assert not torch.allclose(v, after_second[k])
    with pytest.raises(ValueError, match="ema decay"):
        fit(model, loss_fn, optimizer, None, batches, None, epochs=1, device=torch.device("cpu"),
            run_dir=tmp_path / "bad", run_key="k", generator=torch.Generator(), ema_decay=1.5)


def test_ema_recipe_changes_the_kept_weights_not_the_training_and_resumes(ratio_data, tmp_path):
    data = load_split_data(ratio_data / "ckplus")
    recipe = {**RECIPE, "epochs": 3}
    plain, _ = train_model(data, "ean", recipe, tmp_path / "plain", dataset="ckplus")
    averaged, _ = train_model(data, "ean", {**recipe, "ema": 0.9}, tmp_path / "ema", dataset="ckplus")
    train_path = [(r["train_loss"], r["train_acc"]) for r in plain.history]
    assert [(r["train_loss"], r["train_acc"]) for r in averaged.history] == train_path
    assert [r["val_loss"] for r in averaged.history] != [r["val_loss"] for r in plain.history]
    assert not all(torch.equal(plain.best_state[k], averaged.best_state[k]) for k in plain.best_state)
    with pytest.raises(KeyboardInterrupt):
        train_model(data, "ean", {**recipe, "ema": 0.9}, tmp_path / "cut", dataset="ckplus", stop_after_epoch=1)
    resumed, _ = train_model(data, "ean", {**recipe, "ema": 0.9}, tmp_path / "cut", dataset="ckplus")
    assert resumed.resumed_from == 1 and resumed.history == averaged.history
    assert all(torch.equal(averaged.best_state[k], resumed.best_state[k]) for k in averaged.best_state)


def test_kfold_run_tests_on_its_fold_and_selects_on_the_next(kfold_data):
    import pyarrow.parquet as pq

    from pipeline.shards.format import shard_files

    root = kfold_data / "jaffe"
    table = pq.read_table(shard_files(root), columns=["fold", "image"]).to_pydict()
    by_fold = {}
    for f, img in zip(table["fold"], table["image"]):
        by_fold.setdefault(f, set()).add(img["bytes"])
    data = load_split_data(root, fold=2)
    assert data.fold == 2
    def pngs(ds):
        return {ds.png(i) for i in range(len(ds))}

    assert pngs(data.test) == by_fold[2]
    assert pngs(data.validation) == by_fold[3]
    assert pngs(data.train) == by_fold[0] | by_fold[1]
    with pytest.raises(ValueError, match="out of range"):
        load_split_data(root, fold=4)


def test_data_fingerprint_follows_the_rows_not_the_shards_path(kfold_data, tmp_path):
    import shutil

    moved = tmp_path / "elsewhere"
    shutil.copytree(kfold_data / "jaffe", moved)
    here, there = load_split_data(kfold_data / "jaffe", fold=1), load_split_data(moved, fold=1)
    assert here.train.files != there.train.files  # read from another place
    assert here.fingerprint == there.fingerprint  # run keys and finished folds survive a move
    assert load_split_data(moved, fold=2).fingerprint != there.fingerprint


def test_ratio_dataset_rejects_a_fold(ratio_data):
    with pytest.raises(ValueError, match="not k-fold"):
        load_split_data(ratio_data / "ckplus", fold=0)


def test_recipe_per_dataset_overrides():
    from pipeline.training.recipe import for_dataset

    recipe = {"epochs": 120, "optimizer": {"lr": 1e-3}, "datasets": {"ckplus": {"epochs": 300}}}
    assert for_dataset(recipe, "ckplus") == {"epochs": 300, "optimizer": {"lr": 1e-3}}
    assert for_dataset(recipe, "fer2013") == {"epochs": 120, "optimizer": {"lr": 1e-3}}


def test_mixup_recipe_trains_and_repeats(ratio_data, tmp_path):
    data = load_split_data(ratio_data / "ckplus")
    recipe = {**RECIPE, "augment": {**RECIPE["augment"], "mixup": 0.4}}
    a, _ = train_model(data, "ean", recipe, tmp_path / "a", dataset="ckplus")
    b, _ = train_model(data, "ean", recipe, tmp_path / "b", dataset="ckplus")
    plain, _ = train_model(data, "ean", dict(RECIPE), tmp_path / "c", dataset="ckplus")
    assert a.history == b.history and a.history != plain.history


def test_run_log_ends_when_another_run_removed_the_shared_step_signal(tmp_path, monkeypatch):
    """Two fold workers in one repository share DVCLive's step signal file; the one that finds it
    gone between dvclive's exists() and remove() still ends its run (CI failed on exactly this)."""
    import os.path

    from pipeline.training.live_log import STEP_SIGNAL, open_live

    (tmp_path / ".dvc").mkdir()
    monkeypatch.chdir(tmp_path)
    live = open_live(tmp_path / "run", resume=False)
    live.log_metric("val/acc", 0.5)
    live.next_step()
    signal = tmp_path / ".dvc" / "tmp" / "exps" / "run" / STEP_SIGNAL
    assert signal.is_file()
    real_exists = os.path.exists

    def other_worker_removes_it(path):
        found = real_exists(path)
        if found and os.path.realpath(path) == os.path.realpath(signal):
            os.remove(signal)  # the other process wins the race right after the check
        return found

    monkeypatch.setattr(os.path, "exists", other_worker_removes_it)
    live.end()
    monkeypatch.undo()
    assert not signal.exists()
    assert json.loads((tmp_path / "run" / "dvclive" / "metrics.json").read_text())["val"]["acc"] == 0.5


def test_recipe_teacher_alone_drives_the_student_at_alpha_one(ratio_data, tmp_path):
    """``teacher: {alpha: 1}``: the student learns from the teacher's soft labels only, so wrong hard
    labels change nothing; at alpha 0.5 they do. The run key and checkpoint name the teacher."""
    import dataclasses

    data = load_split_data(ratio_data / "ckplus")
    train_model(data, "ean", dict(RECIPE), tmp_path / "teacher", dataset="ckplus")
    teacher_ckpt = tmp_path / "teacher" / "checkpoint.pt"
    wrong = data.train.subset(range(len(data.train)))  # every training label replaced by the next class's
    wrong.targets = [(t + 1) % len(data.label_ids) for t in data.train.targets]
    relabelled = dataclasses.replace(data, train=wrong)

    def student(d, alpha, name):
        recipe = {**RECIPE, "teacher": {"model": "ean", "alpha": alpha, "temperature": 2}}
        _, meta = train_model(d, "ean", recipe, tmp_path / name, dataset="ckplus", teacher_path=teacher_ckpt)
        return torch.load(tmp_path / name / "checkpoint.pt", weights_only=False), meta

    a, meta = student(data, 1.0, "a")
    b, _ = student(relabelled, 1.0, "b")
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    c, _ = student(data, 0.5, "c")
    d, _ = student(relabelled, 0.5, "d")
    assert not all(torch.equal(c["state_dict"][k], d["state_dict"][k]) for k in c["state_dict"])
    plain = torch.load(tmp_path / "teacher" / "checkpoint.pt", weights_only=False)
    assert meta["teacher"] == str(teacher_ckpt) and a["params_hash"] != plain["params_hash"]


def test_recipe_teacher_must_exist_and_read_the_same_input(ratio_data, tmp_path):
    data = load_split_data(ratio_data / "ckplus")
    recipe = {**RECIPE, "epochs": 1, "teacher": {"model": "ean", "alpha": 0.5, "temperature": 2}}
    with pytest.raises(FileNotFoundError, match="no trained checkpoint at .*missing"):
        train_model(data, "ean", recipe, tmp_path / "s", dataset="ckplus", teacher_path=tmp_path / "missing" / "c.pt")
    other = {**RECIPE, "epochs": 1, "input": {**RECIPE["input"], "px": 24}}
    train_model(data, "ean", other, tmp_path / "t", dataset="ckplus")
    with pytest.raises(ValueError, match="must see the same batches"):
        train_model(data, "ean", recipe, tmp_path / "s", dataset="ckplus", teacher_path=tmp_path / "t" / "checkpoint.pt")


def test_cv_trains_each_folds_recipe_teacher_first_even_when_not_listed(tmp_path):
    from pipeline.evaluation.crossval import cross_validate

    root = tiny_shards(tmp_path / "data", "ckplus", "kfold") / "ckplus"
    probe = {"arch": "onet_probe", "model_args": {"img_size": 20}, "epochs": 1}
    student = {"arch": "ean", "epochs": 1, "teacher": {"model": "probe", "alpha": 0.9, "temperature": 4}}
    params = write_params(tmp_path / "params.yaml", probe=probe, student=student)
    settings = {"models": ["student"], "distill": False, "folds": [0], "workers": 1}
    result = cross_validate(root, "ckplus", settings, tmp_path / "models", str(params), log=lambda _: None)
    assert list(result["models"]) == ["probe", "student"]
    ckpt = torch.load(tmp_path / "models" / "student-fold0" / "checkpoint.pt", weights_only=False)
    assert ckpt["teacher"] == str(tmp_path / "models" / "probe-fold0" / "checkpoint.pt")
    assert ckpt["model"] == "ean"
    cyclic = write_params(tmp_path / "cyclic.yaml", probe={**probe, "teacher": {**student["teacher"], "model": "student"}},
                          student=student)
    with pytest.raises(ValueError, match="a cycle of teachers student -> probe -> student"):
        cross_validate(root, "ckplus", settings, tmp_path / "cyclic", str(cyclic), log=lambda _: None)


def test_train_stage_refuses_a_recipe_with_a_teacher(ratio_data, tmp_path):
    params = write_params(tmp_path / "params.yaml", ean={"teacher": {"model": "onet_probe", "alpha": 0.9,
                                                                     "temperature": 4}})
    with pytest.raises(SystemExit, match="train.ean.teacher: .* cv stage only"):
        main(["train", "--model", "ean", "--dataset", "ckplus", "--data", str(ratio_data), "--out",
              str(tmp_path / "models"), "--params", str(params)])
    assert not (tmp_path / "models").exists()
