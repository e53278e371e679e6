"""The real-data protocol of issue 8: subject-independent folds of a CK+48-layout folder, and the bench.

Folds are built by the pipeline itself (ingest -> align precropped -> shard kfold under the
``ckplus48`` profile, as ``bench/ckplus48.py`` runs them) and checked on the rows the ``cv`` stage
trains and tests on: on a synthetic CK+48 folder always, on the real dev subset when present.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from bench_modules import load_bench

from pipeline.evaluation.crossval import assert_fold_independent, fold_roles, shard_rows
from pipeline.shard.splits import SplitError
from pipeline.synthetic import write_dataset

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROOT = Path(__file__).resolve().parents[2]




def _shards(raw: Path, work: Path, folds: int) -> Path:
    """The k-fold shards of ``raw`` exactly as the bench builds them; returns the dataset's shard root."""
    bench = load_bench("ckplus48")
    work.mkdir(parents=True, exist_ok=True)
    params_file = work / "params.yaml"
    params = bench.bench_params(ROOT / "params.yaml", folds, ["ean"], distill=True)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    return bench.prepare(raw, work, params_file) / "ckplus"


def test_fer2013_pretraining_needs_its_folder_and_follows_pretrain_models():
    """The profile starts EAN from FER2013 (pretrain.source: fer2013); the bench does so only with
    --pretrain-on (a FER2013 folder), for exactly the recipes of --pretrain-models (default: the
    profile's pretrain.models), and otherwise starts every recipe from its own initialisation."""
    bench = load_bench("ckplus48")
    profile = bench.profile_params(ROOT / "params.yaml")
    assert bench.profile_pretrained(profile, ["onet_probe", "ean"]) == ["ean"]
    assert bench.profile_pretrained(profile, ["resatt"]) == []
    without = bench.bench_params(ROOT / "params.yaml", 10, ["onet_probe", "ean"], distill=True)
    assert without["datasets"] == ["ckplus"] and without["pretrain"]["models"] == []
    assert without["train"]["ean"]["init"] is None
    for chosen in (["ean"], ["onet_probe", "ean"], ["onet_probe"]):
        params = bench.bench_params(ROOT / "params.yaml", 10, ["onet_probe", "ean"], distill=True, pretrain_models=chosen)
        assert params["datasets"] == ["ckplus", "fer2013"] and params["pretrain"]["source"] == "fer2013"
        assert params["pretrain"]["models"] == chosen
        assert {m for m in ("onet_probe", "ean") if params["train"][m].get("init") == "pretrained"} == set(chosen)


def _check_every_fold(root: Path, k: int, n_images: int) -> None:
    rows = shard_rows(root)
    originals = rows[rows["parent_id"].isna()]
    assert len(originals) == n_images
    assert sorted(originals["fold"].unique()) == list(range(k))
    for f in range(k):
        for validation_fold in (False, True):
            assert_fold_independent(rows, f, validation_fold, "ckplus")
            roles = fold_roles(rows, f, validation_fold)
            train, test = set(roles["train"]["subject"]), set(roles["test"]["subject"])
            assert test and train and not train & test
        # the test parts of the k folds partition the original images
    assert sum(len(fold_roles(rows, f, False)["test"]) for f in range(k)) == n_images


@pytest.fixture(scope="module")
def synthetic_ck48(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("ck48") / "CK+48"
    write_dataset("ckplus", raw, per_class=2, seed=3, layout="ckplus48")
    return raw


def test_synthetic_folds_are_subject_independent(synthetic_ck48, tmp_path):
    n = sum(1 for _ in synthetic_ck48.rglob("*.png"))
    root = _shards(synthetic_ck48, tmp_path / "work", folds=3)
    _check_every_fold(root, 3, n)


def test_a_leaked_subject_is_refused(synthetic_ck48, tmp_path):
    rows = shard_rows(_shards(synthetic_ck48, tmp_path / "work", folds=3))
    test_subject = rows.loc[rows["fold"] == 0, "subject"].iloc[0]
    leaked = rows.copy()
    leaked.loc[leaked.index[leaked["fold"] == 1][0], "subject"] = test_subject  # one training row of fold 0
    with pytest.raises(SplitError, match="fold 0: subjects in both train and test"):
        assert_fold_independent(leaked, 0, False, "ckplus")
    no_subject = rows.copy()
    no_subject.loc[no_subject.index[0], "subject"] = None
    with pytest.raises(SplitError, match="without a subject"):
        assert_fold_independent(no_subject, 0, False, "ckplus")


@pytest.mark.realdata
def test_dev_set_folds_are_subject_independent(realdata, tmp_path):
    raw = realdata / "ckplus48-dev"
    if not raw.is_dir():
        pytest.skip("ckplus48-dev not present")
    n = sum(1 for _ in raw.rglob("*.png"))
    root = _shards(raw, tmp_path / "work", folds=10)
    _check_every_fold(root, 10, n)


def test_bench_smoke_two_folds_one_epoch(synthetic_ck48, tmp_path, capsys):
    work = tmp_path / "bench"
    assert load_bench("ckplus48").main(["--raw", str(synthetic_ck48), "--folds", "2", "--epochs", "1", "--models", "ean",
                          "--threads", "1", "--work", str(work)]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    # the profile's EAN learns from onet_probe: the fold trains it first though only ean was asked for
    assert [line.split("|")[1].strip() for line in table[1:]] == ["onet_probe", "ean", "ean_distilled"]
    metrics = json.loads((work / "eval" / "metrics.json").read_text())
    n = sum(1 for _ in synthetic_ck48.rglob("*.png"))
    assert metrics["k"] == 2 and metrics["folds"] == [0, 1]
    for name in ("ean", "ean_distilled"):
        s = metrics["models"][name]
        assert len(s["accuracy_per_fold"]) == 2
        assert sum(c["support"] for c in s["pooled"]["per_class"].values()) == n  # every image tested once
        counts = s["pooled"]["confusion"]["counts"]
        assert sum(map(sum, counts)) == n
        assert s["mean"] == pytest.approx(sum(s["accuracy_per_fold"]) / 2, abs=1e-6)
    assert metrics["models"]["ean_distilled"]["fold_extra"][0]["rounds"] >= 1
    assert (work / "eval" / "confusion-ean_distilled.png").is_file()


def test_bench_seeds_repeat_the_run_and_reuse_the_teacher_nobody_named(synthetic_ck48, tmp_path, capsys):
    from pipeline.training.checkpoint import read_checkpoint

    work = tmp_path / "bench"
    assert load_bench("ckplus48").main(["--raw", str(synthetic_ck48), "--folds", "2", "--epochs", "1", "--models", "ean",
                          "--threads", "1", "--workers", "1", "--seeds", "3,4", "--work", str(work)]) == 0
    out = capsys.readouterr().out
    means = {}
    for seed in (3, 4):
        run = work / f"seed{seed}"
        metrics = json.loads((run / "eval" / "metrics.json").read_text())
        means[seed] = {m: 100 * s["mean"] for m, s in metrics["models"].items()}
        assert read_checkpoint(run / "models" / "ean-fold0" / "checkpoint.pt")["recipe"]["seed"] == seed
        probe = read_checkpoint(run / "models" / "onet_probe-fold0" / "checkpoint.pt")["recipe"]
        assert probe.get("seed", 0) == 0  # the teacher keeps its recipe's seed
    for fold in (0, 1):  # trained once, by the first seed: the second found it finished (same run, same seconds)
        first, second = (work / f"seed{s}" / "models" / f"onet_probe-fold{fold}" / "scores.json" for s in (3, 4))
        assert json.loads(first.read_text()) == json.loads(second.read_text())
    summary = out[out.index("Over seeds 3, 4"):].splitlines()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in summary if line.startswith("| ") and not line.startswith("| model")}
    assert list(rows) == ["onet_probe", "ean", "ean_distilled"]
    for name in ("onet_probe", "ean"):
        assert rows[name][:3] == [f"{means[3][name]:.2f}", f"{means[4][name]:.2f}",
                                  f"{(means[3][name] + means[4][name]) / 2:.2f}"]
    gain = (means[3]["ean_distilled"] - means[3]["ean"] + means[4]["ean_distilled"] - means[4]["ean"]) / 2
    assert rows["ean_distilled"][2].endswith(f"({gain:+.2f})")
    with pytest.raises(SystemExit):
        load_bench("ckplus48").main(["--raw", str(synthetic_ck48), "--seeds", "1,1", "--work", str(work)])


def test_folds_in_worker_processes_give_the_inline_results(synthetic_ck48, tmp_path):
    from pipeline.evaluation.crossval import cross_validate

    bench = load_bench("ckplus48")
    root = _shards(synthetic_ck48, tmp_path / "work", folds=2)
    params_file = tmp_path / "params.yaml"
    params = bench.bench_params(ROOT / "params.yaml", 2, ["ean"], distill=True, epochs=1)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    settings = {"models": ["ean"], "distill": True, "ten_crop": True}
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))  # what each of the 2 workers gets
    try:
        inline = cross_validate(root, "ckplus", {**settings, "workers": 1}, tmp_path / "inline", str(params_file),
                                log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    lines: list[str] = []
    parallel = cross_validate(root, "ckplus", {**settings, "workers": 2}, tmp_path / "parallel", str(params_file),
                              log=lines.append)
    assert (tmp_path / "parallel" / "ean-fold1" / "checkpoint.pt").is_file()
    heads = sorted(" ".join(line.split()[:4]) for line in lines)  # one line per fold and model
    assert heads == sorted(f"ckplus fold {f}/2: {m}" for f in (0, 1) for m in ("onet_probe", "ean", "ean_distilled"))
    for name in ("onet_probe", "ean", "ean_distilled"):
        a, b = inline["models"][name], parallel["models"][name]
        assert a["accuracy_per_fold"] == b["accuracy_per_fold"]  # folds back in fold order, same numbers
        assert a["pooled"]["confusion"]["counts"] == b["pooled"]["confusion"]["counts"]
    assert parallel["wall_seconds"] > 0


def test_bench_pretrains_on_fer2013_and_fine_tunes_from_it(synthetic_ck48, tmp_path, capsys):
    """--pretrain-on: FER2013's shards made beside CK+'s, EAN pretrained on them (stage pretrain,
    source fer2013), every fold's EAN started from those weights with contempt's head row afresh; a
    re-run with the same settings pretrains nothing again."""
    from pipeline.shards.dataset import ShardDataset
    from pipeline.training.checkpoint import read_checkpoint

    fer = tmp_path / "fer2013"
    write_dataset("fer2013", fer, per_class=4, seed=5, files=["folders"])
    work = tmp_path / "bench"
    argv = ["--raw", str(synthetic_ck48), "--folds", "2", "--epochs", "1", "--models", "ean", "--no-distill",
            "--threads", "1", "--workers", "1", "--work", str(work), "--pretrain-on", str(fer)]
    assert load_bench("ckplus48").main(argv) == 0
    assert "pretrain (fer2013: ean)" in capsys.readouterr().out
    index = json.loads((work / "pretrained" / "pretrained.json").read_text())
    assert list(index) == ["ean"] and index["ean"]["source"] == "fer2013"
    shards = work / "processed" / "fer2013"
    assert all(i.startswith("fer2013/") for i in ShardDataset(shards, "train").image_ids)  # no CK+ face
    ckpt = read_checkpoint(work / "models" / "ean-fold0" / "checkpoint.pt")
    assert ckpt["pretrained"]["source"] == "fer2013" and ckpt["pretrained"]["new_classes"] == ["contempt"]
    assert "neutral" not in ckpt["label_names"]
    assert load_bench("ckplus48").main(argv) == 0
    assert "pretrain (" not in capsys.readouterr().out
    assert index["ean"]["settings"]["epochs"] == 1  # --epochs shortens the profile's own pretraining length too
    # --set: a lever over the profile (here the pretraining's seed) reaches the stage, and the
    # changed settings pretrain again in the same --work
    assert load_bench("ckplus48").main(argv + ["--set", "pretrain.defaults.seed=8"]) == 0
    assert "pretrain (fer2013: ean)" in capsys.readouterr().out
    index = json.loads((work / "pretrained" / "pretrained.json").read_text())
    assert index["ean"]["settings"]["seed"] == 8
