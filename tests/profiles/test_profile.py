"""fer-pipeline profile: overlays on the demo base, reversible, typo-proof, complete for DVC."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pytest

from pipeline.core import params
from pipeline.profiles import ProfileError, available
from pipeline.profiles import switch as _switch
from pipeline.training.recipe import check_profile, teacher_of

# as `fer-pipeline profile` switches: refusing profiles whose recipes could not run
switch = partial(_switch, validate=check_profile)

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("demo", "paper", "ckplus48")


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project's params.yaml (demo) and profiles/ (overlays)."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles", ignore=shutil.ignore_patterns("demo.yaml"))
    return tmp_path


def test_committed_params_are_the_demo_base():
    assert params.load(ROOT / "params.yaml")["profile"] == "demo"


def test_profiles_are_listed(project):
    assert available(project / "profiles") == ["demo", "ckplus48", "fer2013", "paper"]


@pytest.mark.parametrize("name", ["paper", "ckplus48", "fer2013"])
def test_switch_and_back_restores_the_base_byte_for_byte(project, name):
    base = (project / "params.yaml").read_bytes()
    switch(name, project / "params.yaml")
    assert params.load(project / "params.yaml")["profile"] == name
    assert (project / "profiles" / "demo.yaml").read_bytes() == base
    switch("demo", project / "params.yaml")
    assert (project / "params.yaml").read_bytes() == base
    assert not (project / "profiles" / "demo.yaml").exists()  # the base is params.yaml again


def test_paper_overlay_changes_only_its_keys_and_keeps_comments(project):
    demo = params.load(project / "params.yaml")
    switch("paper", project / "params.yaml")
    paper = params.load(project / "params.yaml")
    assert params.section("align", "kdef", paper)["px"] == 224
    assert params.section("align", "jaffe", paper) == params.section("align", "jaffe", demo)
    resatt = params.section("train", "resatt", paper)
    assert (resatt["epochs"], resatt["batch_size"], resatt["optimizer"]["lr"]) == (50, 64, 1.0e-4)
    assert paper["datasets"] == demo["datasets"]
    assert paper["ingest"] == demo["ingest"] and paper["split"] == demo["split"]
    assert "# MTCNN detection" in (project / "params.yaml").read_text()
    # the demo's CPU stand-ins are undone: the papers' networks, optimizers and offline copies
    assert params.section("train", "dfnet", paper)["model_args"]["backbone"] == "resnet50"
    erf = params.section("train", "erfnet_att", paper)
    assert (erf["optimizer"]["name"], erf["optimizer"]["momentum"], erf["model_args"]["img_size"]) == ("sgd", 0.99, 384)
    assert params.section("augment", "ckplus", paper)["factor"] == 2
    # the ablation runs are added to the demo's matrices, which keep all their pairs
    assert set(demo["train"]["matrix"]) < set(paper["train"]["matrix"])
    assert {"ean_noatt-rafdb", "dnn-fer2013", "resatt_parallel-fer2013", "dfnet_no_dcm-kdef"} <= set(paper["evaluate"]["matrix"])
    for run in paper["train"]["matrix"].values():  # every run has a recipe; the ablations train at the papers' sizes
        recipe = params.section("train", run["model"], paper)
        assert recipe["epochs"] >= 50, run
    assert params.section("train", "dfnet_no_fsa", paper)["model_args"] == {"backbone": "resnet50", "fsa": False}


def test_ckplus48_trains_on_ckplus_and_starts_ean_from_fer2013(project):
    switch("ckplus48", project / "params.yaml")
    p = params.load(project / "params.yaml")
    assert p["datasets"] == ["ckplus", "fer2013"]
    assert params.section("align", "ckplus", p)["policy"] == "precropped"
    assert {v["dataset"] for v in p["train"]["matrix"].values()} == {"ckplus"}  # _replace: not merged
    assert p["cv"]["datasets"] == ["ckplus"] and p["distill"]["datasets"] == []  # FER2013: pretraining only
    assert p["pretrain"]["source"] == "fer2013" and p["pretrain"]["models"] == ["ean"]
    assert params.section("train", "ean", p)["init"] == "pretrained"
    assert params.section("train", "onet_probe", p).get("init") is None  # measured worse from FER2013
    assert params.section("ingest", "fer2013", p)["drop_duplicates"] is False


def test_overlay_typo_fails_loudly(project):
    (project / "profiles" / "typo.yaml").write_text("align:\n  kdef: {sise: 224}\n")
    before = (project / "params.yaml").read_bytes()
    with pytest.raises(ProfileError, match=r"align\.kdef\.sise: not a key"):
        switch("typo", project / "params.yaml")
    assert (project / "params.yaml").read_bytes() == before


def test_a_taught_recipe_in_train_matrix_is_refused(project):
    # the train stage cannot declare a teacher's checkpoint: `dvc repro` would stop there
    (project / "profiles" / "taught.yaml").write_text(
        "train:\n  dnn_cbam:\n    teacher: {model: onet_probe, alpha: 0.9, temperature: 4}\n")
    before = (project / "params.yaml").read_bytes()
    with pytest.raises(ProfileError, match=r"taught\.yaml: .*dnn_cbam-fer2013 \(train\.dnn_cbam\.teacher: onet_probe\)"):
        switch("taught", project / "params.yaml")
    assert (project / "params.yaml").read_bytes() == before


def test_a_recipe_starting_from_weights_nobody_pretrains_is_refused(project):
    (project / "profiles" / "unpretrained.yaml").write_text("train:\n  resatt:\n    init: pretrained\n")
    before = (project / "params.yaml").read_bytes()
    with pytest.raises(ProfileError, match=r"unpretrained\.yaml: recipes with init: pretrained that pretrain\.models "
                                           r"does not list: resatt "):
        switch("unpretrained", project / "params.yaml")
    assert (project / "params.yaml").read_bytes() == before
    (project / "profiles" / "pretrained.yaml").write_text(
        "pretrain:\n  models: [resatt]\ntrain:\n  resatt:\n    init: pretrained\n")
    switch("pretrained", project / "params.yaml")
    assert params.load(project / "params.yaml")["pretrain"]["models"] == ["resatt"]


@pytest.mark.parametrize("name", PROFILES)
def test_no_profile_trains_a_taught_recipe_in_the_train_stage(project, name):
    switch(name, project / "params.yaml")
    p = params.load(project / "params.yaml")
    for key, pair in p["train"]["matrix"].items():
        assert teacher_of(params.section("train", pair["model"], p)) is None, key


def test_unknown_profile(project):
    with pytest.raises(ProfileError, match="no such profile"):
        switch("nope", project / "params.yaml")


def test_hand_edited_params_are_not_overwritten_without_force(project):
    switch("paper", project / "params.yaml")
    edited = (project / "params.yaml").read_text().replace("px: 224", "px: 200", 1)
    (project / "params.yaml").write_text(edited)
    with pytest.raises(ProfileError, match="edited after switching"):
        switch("demo", project / "params.yaml")
    assert (project / "params.yaml").read_text() == edited
    switch("demo", project / "params.yaml", force=True)
    assert params.load(project / "params.yaml")["profile"] == "demo"


def missing_params(project: Path) -> list[str]:
    """Params keys that dvc.yaml's stages (as DVC resolves them for this params.yaml) track but
    params.yaml lacks: DVC refuses to run such a stage."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    shutil.copy(ROOT / "dvc.yaml", project / "dvc.yaml")
    Repo.init(project, no_scm=True).close()
    missing = []
    with Repo(project) as repo:
        for stage in repo.index.stages:
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency):
                    values = dep.read_params()
                    missing += [f"{stage.name}: {k}" for k in dep.params if k not in values]
    return missing


@pytest.mark.parametrize("name", PROFILES)
def test_every_tracked_param_exists_in_every_profile(project, name):
    switch(name, project / "params.yaml")
    assert missing_params(project) == []


def test_set_assignments_change_one_key_over_the_profile(project):
    import yaml

    from pipeline.profiles import compose

    base = (project / "params.yaml").read_text()
    plain = yaml.safe_load(compose(base, "fer2013", project / "profiles", check_profile))
    changed = yaml.safe_load(compose(base, "fer2013", project / "profiles", check_profile,
                                     ["distill.fer2013.optimizer.lr=0.01", "train.ean.optimizer.weight_decay=1e-4",
                                      "pretrain.ean.epochs=40"]))
    assert plain["distill"]["fer2013"]["optimizer"]["lr"] == 0.1
    assert changed["distill"]["fer2013"]["optimizer"] == {**plain["distill"]["fer2013"]["optimizer"], "lr": 0.01}
    # 1e-4 reaches a YAML 1.1 reader (PyYAML, yaml.safe_load above) as a float, not the string '1e-4'
    assert changed["train"]["ean"]["optimizer"]["weight_decay"] == pytest.approx(1e-4)
    assert changed["pretrain"]["ean"] == {"epochs": 40}  # a per-model entry, as an overlay may add
    changed["distill"]["fer2013"]["optimizer"]["lr"] = 0.1
    changed["train"]["ean"]["optimizer"]["weight_decay"] = plain["train"]["ean"]["optimizer"]["weight_decay"]
    del changed["pretrain"]["ean"]
    assert changed == plain  # nothing else moved


@pytest.mark.parametrize("assignment, message", [
    ("train.ean.epoch=40", r"--set train\.ean\.epoch=40: train\.ean\.epoch: not a key of the base params"),
    ("pretrain.ean.epoch=40", r"--set pretrain\.ean\.epoch=40: pretrain\.ean\.epoch: unknown key \(did you mean 'epochs'\?\)"),
    ("train.ean.optimizer.lr=fast", r"--set train\.ean\.optimizer\.lr=fast: train\.ean\.optimizer\.lr: input should be a valid number"),
    ("train.ean", r"--set train\.ean: expected KEY=VALUE"),
    ("train..lr=1", r"--set train\.\.lr=1: expected KEY=VALUE"),
    ("trian.ean.epochs=3", r"--set trian\.ean\.epochs=3: trian: not a key of the base params"),
])
def test_a_bad_set_assignment_is_one_line_naming_it(project, assignment, message):
    from pipeline.profiles import compose

    with pytest.raises(ProfileError, match=message) as err:
        compose((project / "params.yaml").read_text(), "fer2013", project / "profiles", check_profile, [assignment])
    assert "\n" not in str(err.value)
