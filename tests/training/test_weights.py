"""A recipe's starting weights (``weights:``): a state dict file under data/weights/, loaded exactly, fetched
from its public source when online, refused in one line offline; the checkpoint never needs it again.

Nothing is downloaded: state dicts are written here, torch's cache is a temporary folder and
torchvision's fetch is replaced (offline, or a copy of a local file).
"""

from __future__ import annotations

import copy
import hashlib
import shutil
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from train_helpers import tiny_shards, write_params

from pipeline.cli import main
from pipeline.core.schema import ParamsError, validate
from pipeline.training.checkpoint import build_model, load_model, read_checkpoint, save_checkpoint
from pipeline.training.weights import WeightsError, ensure_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
#: DFNet as small as it gets: a ResNet18 backbone, no DCM, no FSA (one grey channel, the tiny shards')
DFNET18 = {"backbone": "resnet18", "dcm": False, "fsa": False}




def resnet18_file(path: Path, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_build_model_starts_from_the_file_exactly(tmp_path):
    reference = resnet18_file(tmp_path / "r18.pth", seed=1)
    model = build_model("dfnet", 3, 3, DFNET18, weights=tmp_path / "r18.pth")
    assert all(torch.equal(v, reference[k]) for k, v in model.backbone.state_dict().items())


def test_a_trained_checkpoint_loads_and_evaluates_after_the_weights_file_is_gone(tmp_path):
    data = tiny_shards(tmp_path, "rafdb", "ratio", subjects=8)
    weights = tmp_path / "data" / "weights" / "resnet18-start.pth"
    resnet18_file(weights, seed=1)
    recipe = {"arch": "dfnet", "epochs": 1, "model_args": DFNET18, "weights": str(weights),
              "input": {"px": 32, "resize": 32, "channels": 1, "mean": [0.5], "std": [0.5]}}
    params = write_params(tmp_path / "params.yaml", dfnet18=recipe)
    run = ["--model", "dfnet18", "--dataset", "rafdb", "--data", str(data), "--params", str(params)]
    assert main(["train", *run, "--out", str(tmp_path / "models")]) == 0
    ckpt = read_checkpoint(tmp_path / "models" / "dfnet18-rafdb" / "checkpoint.pt")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    assert ckpt["weights"] == {"path": str(weights), "sha256_16": digest}
    assert "pretrained" not in ckpt["model_args"] and "pretrained_path" not in ckpt["model_args"]
    # other bytes in the same file: another run (its key holds the file's hash), not a resume of this one
    resnet18_file(weights, seed=2)
    assert main(["train", *run, "--out", str(tmp_path / "other")]) == 0
    assert read_checkpoint(tmp_path / "other" / "dfnet18-rafdb" / "checkpoint.pt")["params_hash"] != ckpt["params_hash"]

    shutil.rmtree(tmp_path / "data" / "weights")  # a teammate who pulled only the checkpoint
    model, again = load_model(tmp_path / "models" / "dfnet18-rafdb" / "checkpoint.pt")
    assert all(torch.equal(v, ckpt["state_dict"][k]) for k, v in model.state_dict().items())
    assert main(["evaluate", *run, "--models", str(tmp_path / "models"), "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "dfnet18-rafdb" / "metrics.json").is_file()


def test_an_older_checkpoint_naming_a_deleted_pretrained_path_still_loads(tmp_path):
    torch.manual_seed(0)
    net = build_model("dfnet", 3, 1, DFNET18)
    gone = tmp_path / "resnet50-gone.pth"  # DFNet's old model_args.pretrained_path, file since deleted
    save_checkpoint(tmp_path / "checkpoint.pt", net, model="dfnet", model_args={**DFNET18, "pretrained_path": str(gone)},
                    num_classes=3, in_chans=1, recipe={}, label_names=["a", "b", "c"])
    model, _ = load_model(tmp_path / "checkpoint.pt")
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in model.state_dict().items())


def test_the_paper_profile_offline_stops_the_dfnet_stage_at_once_saying_where_to_put_the_file(
        tmp_path, monkeypatch, torch_cache, offline):
    from pipeline.profiles.overlay import compose

    text = compose((ROOT / "params.yaml").read_text(), "paper", ROOT / "profiles")
    (tmp_path / "params.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)  # a checkout without data/weights/ and without data
    for model in ("dfnet", "dfnet_baseline"):
        with pytest.raises(SystemExit) as stop:
            main(["train", "--model", model, "--dataset", "rafdb", "--params", "params.yaml", "--device", "cpu"])
        msg = str(stop.value.code)
        assert "\n" not in msg
        assert msg.startswith(f"fer-pipeline train: error: train.{model}.weights: data/weights/resnet50-0676ba61.pth "
                              "not found and torchvision ResNet50_Weights.IMAGENET1K_V1 could not be fetched")
        assert msg.endswith("put resnet50-0676ba61.pth (https://download.pytorch.org/models/resnet50-0676ba61.pth) "
                            "at data/weights/resnet50-0676ba61.pth; then `dvc add data/weights` to share it")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing read, fetched or written


def test_online_a_missing_public_file_is_fetched_through_torchs_cache_into_data_weights(
        tmp_path, monkeypatch, torch_cache):
    published = tmp_path / "published" / "resnet18-f37072fd.pth"
    resnet18_file(published, seed=3)
    fetched = []

    def download(url, *args, **kwargs):  # what torch.hub does: the file lands in the cache, named by the url
        fetched.append(url)
        torch_cache.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(published, torch_cache / url.rsplit("/", 1)[1])
        return torch.load(torch_cache / url.rsplit("/", 1)[1], weights_only=True)

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", download)
    target = tmp_path / "data" / "weights" / "resnet18-f37072fd.pth"
    recipe = {"arch": "dfnet", "model_args": DFNET18, "weights": str(target)}
    lines = []
    assert ensure_weights(recipe, "dfnet18", lines.append) == target
    assert fetched == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"]
    assert target.read_bytes() == published.read_bytes() == (torch_cache / target.name).read_bytes()
    assert lines == [f"train.dfnet18.weights: fetched torchvision ResNet18_Weights.IMAGENET1K_V1 -> {target}; "
                     f"`dvc add {target.parent}` and commit {target.parent}.dvc to share it"]
    assert ensure_weights(recipe, "dfnet18", lines.append) == target and len(fetched) == 1  # there now: no fetch


def test_a_missing_file_nobody_publishes_is_one_line(tmp_path):
    with pytest.raises(WeightsError) as err:
        ensure_weights({"model_args": {}, "weights": str(tmp_path / "mine.pth")}, "ean")
    assert str(err.value) == (f"train.ean.weights: {tmp_path / 'mine.pth'} not found: put the state dict there, "
                              f"then `dvc add {tmp_path}` to share it")


@pytest.mark.parametrize(("edit", "message"), [
    ({"weights": "data/weights/x.pth", "init": "pretrained"},
     "train.dfnet: init: pretrained and weights: data/weights/x.pth are two starting points; set one"),
    ({"model_args": {"backbone": "resnet18", "pretrained_path": "r.pth"}},
     "train.dfnet.model_args.pretrained_path: moved to train.dfnet.weights"),
])
def test_weights_are_named_in_one_place(edit, message):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = copy.deepcopy(params)
    params["train"]["dfnet"].update(edit)
    with pytest.raises(ParamsError) as err:
        validate(params, "params.yaml")
    assert str(err.value).startswith(f"params.yaml: {message}")
