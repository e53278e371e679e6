"""Pretraining on synthetic faces: the crops, stage ``pretrain``, and trainings with ``init: pretrained``."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import yaml
from train_helpers import RECIPE, tiny_shards, write_params

from pipeline.cli import main
from pipeline.synthetic.crops import crop_box, face_crops
from pipeline.training.checkpoint import read_checkpoint
from pipeline.training.data import load_split_data
from pipeline.training.train_model import train_model

CLASSES = ["anger", "happiness", "surprise"]  # the tiny shards' classes (unified ids 1, 5, 7)
PRETRAIN = {"classes": CLASSES, "per_class": 2, "validation_per_class": 1, "frames": 2, "render": 32,
            "box": [0.125, 0.2, 0.875, 0.95], "epochs": 1, "seed": 0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ratio_data(tmp_path_factory):
    return tiny_shards(tmp_path_factory.mktemp("ratio"), "ckplus", "ratio")


def _params(path, models, **recipes):
    write_params(path, **recipes)
    params = yaml.safe_load(path.read_text())
    params["pretrain"] = {"models": models, "defaults": copy.deepcopy(PRETRAIN)}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_face_crops_are_framed_labelled_and_repeatable():
    crops = face_crops(["anger", "happiness"], 2, seed=3, render=32, frames=2)
    assert [c.label for c in crops] == ["anger"] * 4 + ["happiness"] * 4
    assert crop_box(32, [0.125, 0.2, 0.875, 0.95]) == (4, 6, 28, 30)
    assert all(c.image.shape == (24, 24) and c.image.dtype == np.uint8 for c in crops)
    assert len({c.id for c in crops}) == 8
    again = face_crops(["anger", "happiness"], 2, seed=3, render=32, frames=2)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(crops, again))
    other = face_crops(["anger", "happiness"], 2, seed=4, render=32, frames=2)
    assert not np.array_equal(crops[0].image, other[0].image)
    # two frames of one sequence: the same face, the expression a little further on
    assert crops[0].id.split("_")[0] == crops[1].id.split("_")[0]
    assert not np.array_equal(crops[0].image, crops[1].image)


def test_face_crops_refuse_unknown_classes_and_bad_boxes():
    with pytest.raises(ValueError, match="unknown classes \\['joy'\\]"):
        face_crops(["joy"], 1, seed=0)
    with pytest.raises(ValueError, match="not inside"):
        crop_box(64, [0.5, 0.0, 0.4, 1.0])
    with pytest.raises(ValueError, match="need 4 fractions"):
        crop_box(64, [0.1, 0.1, 0.9])


def test_pretrain_stage_writes_a_checkpoint_per_listed_recipe_and_an_index(tmp_path):
    params = _params(tmp_path / "params.yaml", ["ean"], ean={"teacher": {"model": "onet_probe", "alpha": 0.9,
                                                                        "temperature": 4}})
    out = tmp_path / "pretrained"
    assert main(["pretrain", "--out", str(out), "--params", str(params)]) == 0
    ckpt = read_checkpoint(out / "ean" / "checkpoint.pt")
    assert ckpt["label_names"] == CLASSES and ckpt["dataset"] == "synthetic"
    assert ckpt["n_train"] == 3 * 2 * 2 and ckpt["n_validation"] == 3 * 1 * 2
    assert ckpt["recipe"]["teacher"] is None and ckpt["recipe"]["epochs"] == 1  # its own recipe, no teacher
    index = json.loads((out / "pretrained.json").read_text())
    assert list(index) == ["ean"] and index["ean"]["classes"] == CLASSES and index["ean"]["n_train"] == 12
    # nothing listed: the directory holds just an empty index (the earlier model is gone)
    params = _params(tmp_path / "params.yaml", [])
    assert main(["pretrain", "--out", str(out), "--params", str(params)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["pretrained.json"]
    assert json.loads((out / "pretrained.json").read_text()) == {}


def test_a_killed_pretraining_resumes_from_its_last_epoch(tmp_path, monkeypatch):
    import pipeline.training.pretraining as pretraining

    params = _params(tmp_path / "params.yaml", ["ean"])
    raw = yaml.safe_load(params.read_text())
    raw["pretrain"]["defaults"]["epochs"] = 2
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["pretrain", "--out", str(tmp_path / "whole"), "--params", str(params)]) == 0
    real, starts = pretraining.train_model, []

    def killed_once(*args, **kwargs):
        if not starts:
            starts.append(None)
            return real(*args, stop_after_epoch=1, **kwargs)  # as if killed after its first epoch
        result, meta = real(*args, **kwargs)
        starts.append(result.resumed_from)
        return result, meta

    monkeypatch.setattr(pretraining, "train_model", killed_once)
    out = tmp_path / "pretrained"
    with pytest.raises(KeyboardInterrupt):
        main(["pretrain", "--out", str(out), "--params", str(params)])
    parts = tmp_path / ".pretrained.parts"
    assert not out.exists() and (parts / "ean" / "last.pt").is_file()  # the output stays whole: none yet
    assert main(["pretrain", "--out", str(out), "--params", str(params)]) == 0
    assert starts == [None, 1] and not parts.exists()
    whole, again = (read_checkpoint(d / "ean" / "checkpoint.pt")["state_dict"] for d in (tmp_path / "whole", out))
    assert all(torch.equal(whole[k], again[k]) for k in whole)  # the same weights as the run never killed


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Two pretrained EANs (seeds 0 and 1) of the tiny recipe, as stage pretrain writes them."""
    base = tmp_path_factory.mktemp("pretrained")
    dirs = []
    for seed in (0, 1):
        params = _params(base / f"params{seed}.yaml", ["ean"])
        raw = yaml.safe_load(params.read_text())
        raw["pretrain"]["defaults"]["seed"] = seed
        params.write_text(yaml.safe_dump(raw))
        assert main(["pretrain", "--out", str(base / f"seed{seed}"), "--params", str(params)]) == 0
        dirs.append(base / f"seed{seed}")
    return dirs


def test_init_pretrained_starts_from_those_weights_and_keys_the_run(ratio_data, pretrained, tmp_path):
    data = load_split_data(ratio_data / "ckplus")
    frozen = {**RECIPE, "epochs": 1, "optimizer": {"name": "sgd", "lr": 0.0, "momentum": 0.9}}  # weights stay put
    start = read_checkpoint(pretrained[0] / "ean" / "checkpoint.pt")["state_dict"]
    result, meta = train_model(data, "ean", {**frozen, "init": "pretrained"}, tmp_path / "a", dataset="ckplus",
                               pretrained_path=pretrained[0] / "ean" / "checkpoint.pt")
    weights = [k for k in start if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.equal(result.best_state[k], start[k]) for k in weights)
    assert meta["pretrained"] == {"path": str(pretrained[0] / "ean" / "checkpoint.pt"), "source": "synthetic",
                                  "kept_classes": CLASSES, "new_classes": []}
    plain, plain_meta = train_model(data, "ean", frozen, tmp_path / "b", dataset="ckplus")
    assert not all(torch.equal(plain.best_state[k], start[k]) for k in weights)  # the default init is another
    _, other = train_model(data, "ean", {**frozen, "init": "pretrained"}, tmp_path / "c", dataset="ckplus",
                           pretrained_path=pretrained[1] / "ean" / "checkpoint.pt")
    assert len({meta["params_hash"], plain_meta["params_hash"], other["params_hash"]}) == 3


def test_other_classes_keep_the_shared_head_rows_and_start_the_new_ones_afresh(tmp_path, pretrained):
    """Pretrained on anger, happiness, surprise; fine-tuned on anger, contempt, happiness (as FER2013 ->
    CK+48): the trunk and the shared classes' rows of EAN's classifier (``tail``) are the pretrained
    ones, contempt's row is the model's own initialisation."""
    other = tiny_shards(tmp_path / "other", "ckplus", "ratio", labels=(1, 2, 5))
    data = load_split_data(other / "ckplus")
    frozen = {**RECIPE, "epochs": 1, "optimizer": {"name": "sgd", "lr": 0.0, "momentum": 0.9}, "init": "pretrained"}
    path = pretrained[0] / "ean" / "checkpoint.pt"
    start = read_checkpoint(path)["state_dict"]
    result, meta = train_model(data, "ean", frozen, tmp_path / "a", dataset="ckplus", pretrained_path=path)
    assert meta["pretrained"]["kept_classes"] == ["anger", "happiness"]
    assert meta["pretrained"]["new_classes"] == ["contempt"]
    trunk = [k for k in start if not k.startswith("tail.") and not k.endswith(("running_mean", "running_var",
                                                                                "num_batches_tracked"))]
    assert trunk and all(torch.equal(result.best_state[k], start[k]) for k in trunk)
    conv = "tail.0.weight"  # rows: classes; pretrained anger 0, happiness 1 -> fine-tuned 0 and 2
    assert torch.equal(result.best_state[conv][0], start[conv][0])
    assert torch.equal(result.best_state[conv][2], start[conv][1])
    assert not torch.equal(result.best_state[conv][1], start[conv][2])  # contempt: not surprise's row


def test_init_pretrained_refuses_a_missing_or_foreign_checkpoint(tmp_path, pretrained):
    two_classes = tiny_shards(tmp_path / "two", "ckplus", "ratio", labels=(1, 5))
    data = load_split_data(two_classes / "ckplus")
    recipe = {**RECIPE, "epochs": 1, "init": "pretrained"}
    with pytest.raises(FileNotFoundError, match="pretrain.models"):
        train_model(data, "ean", recipe, tmp_path / "a", dataset="ckplus", pretrained_path=tmp_path / "none.pt")
    path = pretrained[0] / "ean" / "checkpoint.pt"
    with pytest.raises(ValueError, match=f"{path}: .*in_chans 1 \\(this run: 3\\)"):
        train_model(data, "ean", {**recipe, "input": {**RECIPE["input"], "channels": 3, "mean": [0.5] * 3,
                                                       "std": [0.5] * 3}}, tmp_path / "b", dataset="ckplus",
                    pretrained_path=path)
    with pytest.raises(ValueError, match="recipe init 'imagenet'"):
        train_model(data, "ean", {**recipe, "init": "imagenet"}, tmp_path / "c", dataset="ckplus")


def test_train_and_cv_stages_find_the_pretrained_weights(ratio_data, pretrained, tmp_path):
    params = _params(tmp_path / "params.yaml", ["ean"], ean={"epochs": 1, "init": "pretrained"})
    assert main(["train", "--model", "ean", "--dataset", "ckplus", "--data", str(ratio_data),
                 "--out", str(tmp_path / "models"), "--pretrained", str(pretrained[0]), "--params", str(params)]) == 0
    ckpt = read_checkpoint(tmp_path / "models" / "ean-ckplus" / "checkpoint.pt")
    assert ckpt["pretrained"]["path"] == str(pretrained[0] / "ean" / "checkpoint.pt")
    # cv refuses before any fold trains when the pretrained checkpoint is missing
    from pipeline.evaluation.crossval import cross_validate

    kfold = tiny_shards(tmp_path / "kfold", "jaffe", "kfold")
    with pytest.raises(FileNotFoundError, match="train.ean.init: pretrained, but no checkpoint"):
        cross_validate(kfold / "jaffe", "jaffe", {"models": ["ean"]}, tmp_path / "cv", str(params),
                       pretrained_dir=tmp_path / "nowhere")
    assert not (tmp_path / "cv").exists()


def test_pretraining_on_a_processed_dataset(tmp_path):
    """pretrain.source: a dataset's shards (FER2013 in the profiles): its train split trains, its
    validation split selects, its classes are the pretraining's; the index says where it came from."""
    source = tiny_shards(tmp_path / "source", "rafdb", "ratio", labels=(1, 5, 7))
    params = _params(tmp_path / "params.yaml", ["ean"])
    raw = yaml.safe_load(params.read_text())
    raw["pretrain"]["source"] = "rafdb"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["pretrain", "--out", str(tmp_path / "pre"), "--data", str(source), "--params", str(params)]) == 0
    index = json.loads((tmp_path / "pre" / "pretrained.json").read_text())
    data = load_split_data(source / "rafdb", derived_rows=False)
    assert index["ean"]["source"] == "rafdb" and index["ean"]["n_train"] == len(data.train)
    assert index["ean"]["n_validation"] == len(data.validation)
    ckpt = read_checkpoint(tmp_path / "pre" / "ean" / "checkpoint.pt")
    assert ckpt["dataset"] == "rafdb" and ckpt["label_names"] == CLASSES
    raw["pretrain"]["source"] = "fer2014"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["pretrain", "--out", str(tmp_path / "bad"), "--data", str(source), "--params", str(params)]) == 2


def test_a_jaffe_sized_dataset_learns_from_fer2013_pretraining_what_it_cannot_alone(tmp_path):
    """The small-data case of issue 28 on drawn faces: 8 subjects x FER2013's 7 classes (a JAFFE-sized
    set) is too few to learn from in 3 epochs; started from EAN pretrained on 140 faces of a
    FER2013-like source (stage pretrain, ``pretrain.source: fer2013``), the same folds are learnt.
    JAFFE has FER2013's classes, so every head row is kept and none starts afresh."""
    from pipeline.evaluation.crossval import cross_validate
    from pipeline.shards.dataset import ShardDataset

    seven = (0, 1, 3, 4, 5, 6, 7)  # FER2013's and JAFFE's classes: CK+'s but contempt, with neutral
    source = tiny_shards(tmp_path / "fer", "fer2013", "ratio", labels=seven, subjects=0, per_subject=40)
    jaffe = tiny_shards(tmp_path / "jaffe", "jaffe", "kfold", labels=seven, subjects=8, per_subject=1)
    assert all(i.startswith("fer2013/") for i in ShardDataset(source / "fer2013", "train").image_ids)
    means = {}
    for init in ("pretrained", None):
        params = _params(tmp_path / f"params-{init}.yaml", ["ean"], ean={"epochs": 3, "init": init})
        raw = yaml.safe_load(params.read_text())
        raw["pretrain"].update(source="fer2013")
        raw["pretrain"]["defaults"].update(epochs=8)
        params.write_text(yaml.safe_dump(raw, sort_keys=False))
        if init:
            assert main(["pretrain", "--out", str(tmp_path / "pre"), "--data", str(source), "--params", str(params)]) == 0
        result = cross_validate(jaffe / "jaffe", "jaffe", {"models": ["ean"]}, tmp_path / f"cv-{init}", str(params),
                                pretrained_dir=tmp_path / "pre", log=lambda *_: None)
        means[init] = result["models"]["ean"]["mean"]
    for fold in range(4):
        start = read_checkpoint(tmp_path / "cv-pretrained" / f"ean-fold{fold}" / "checkpoint.pt")["pretrained"]
        assert start["source"] == "fer2013" and start["new_classes"] == [] and len(start["kept_classes"]) == 7
    assert "pretrained" not in read_checkpoint(tmp_path / "cv-None" / "ean-fold0" / "checkpoint.pt")
    assert means[None] < 0.3 and means["pretrained"] > 0.5, means  # chance is 1/7; measured 0.125 and 0.70
