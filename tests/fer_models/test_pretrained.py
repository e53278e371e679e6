"""Pretrained weights, timm-style: ``create_model(name, pretrained=False | True | path)``, ``list_models``
filters, sources in ``default_cfgs``. Nothing is downloaded: state dicts are written here, torch's
cache lives in a temporary folder, and torchvision's fetch is replaced (offline, or a local copy).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torchvision

import fer_models
from fer_models.pretrained import PretrainedUnavailable

ROOT = Path(__file__).resolve().parents[2]




def test_list_models_filters_as_timm():
    assert fer_models.list_models("ean*") == ["ean"]
    assert fer_models.list_models(["d*", "e*"]) == ["dfnet", "dnn_cbam", "ean", "erfnet_att"]
    assert fer_models.list_models("*", exclude_filters=["*_*"]) == ["dfnet", "ean", "resatt"]
    assert fer_models.list_models(pretrained=True) == ["dfnet", "ean", "onet_probe"]  # ean: shipped (FER2013)
    assert fer_models.list_models("nothing*") == []


def test_default_cfgs_carry_the_weight_source_torchvision_publishes():
    cfg = fer_models.model_default_cfg("dfnet")["pretrained"]
    weights = torchvision.models.get_weight(cfg["weights"])  # the enum only: no download
    assert (cfg["source"], cfg["target"]) == ("torchvision", "backbone")
    assert cfg["url"] == weights.url and cfg["file"] == weights.url.rsplit("/", 1)[1] == "resnet50-0676ba61.pth"
    assert fer_models.pretrained_cfg("dfnet") == cfg
    small = fer_models.pretrained_cfg("dfnet", backbone="resnet18")
    assert small["file"] == "resnet18-f37072fd.pth" and small["weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert fer_models.pretrained_cfg("ean")["source"] == "package"  # the FER2013 EAN shipped in fer_models/weights
    assert fer_models.pretrained_cfg("resatt") is None


def test_a_local_resnet50_state_dict_loads_into_dfnet_exactly(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "resnet50.pth"
    torch.save(reference, path)
    torch.manual_seed(0)
    model = fer_models.create_model("dfnet", num_classes=7, pretrained=path)
    loaded = model.backbone.state_dict()
    assert set(loaded) == {k for k in reference if not k.startswith("fc.")}
    assert all(torch.equal(loaded[k], reference[k]) for k in loaded)
    torch.manual_seed(0)
    fresh = fer_models.create_model("dfnet", num_classes=7)  # the same seed without the file: the rest is equal
    rest = {k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in rest.items())
    assert not torch.equal(fresh.backbone.conv1.weight, reference["conv1.weight"])


def test_a_whole_model_state_dict_loads_and_a_head_of_other_classes_keeps_its_init(tmp_path):
    torch.manual_seed(2)
    trained = fer_models.create_model("dfnet", num_classes=7, backbone="resnet18")
    path = tmp_path / "dfnet18.pt"
    torch.save({"state_dict": trained.state_dict()}, path)  # a checkpoint-style wrapper
    same = fer_models.create_model("dfnet", num_classes=7, backbone="resnet18", pretrained=path)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in same.state_dict().items())
    torch.manual_seed(3)
    other = fer_models.create_model("dfnet", num_classes=3, backbone="resnet18", pretrained=path)
    for k, v in other.state_dict().items():
        assert (v.shape == (3, 512) or v.shape == (3,)) if k.startswith("fc.") else torch.equal(v, trained.state_dict()[k])
    with pytest.raises(ValueError, match="dfnet18.pt: .* has shape"):
        fer_models.create_model("dfnet", num_classes=7, backbone="resnet18", in_chans=1, pretrained=path)


def test_a_file_that_fits_nothing_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, bad)
    for name in ("dfnet", "ean"):
        with pytest.raises(ValueError, match="other.pth") as err:
            fer_models.create_model(name, pretrained=bad)
        assert "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        fer_models.create_model("ean", pretrained=tmp_path / "missing.pth")


def test_pretrained_true_takes_the_file_already_in_torchs_cache(torch_cache, offline):
    torch.manual_seed(4)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    torch_cache.mkdir(parents=True)
    torch.save(reference, torch_cache / "resnet18-f37072fd.pth")
    model = fer_models.create_model("dfnet", backbone="resnet18", dcm=False, fsa=False, pretrained=True)
    assert all(torch.equal(v, reference[k]) for k, v in model.backbone.state_dict().items())


def test_pretrained_true_offline_says_where_to_put_the_file(torch_cache, offline):
    with pytest.raises(PretrainedUnavailable) as err:
        fer_models.create_model("dfnet", dcm=False, fsa=False, pretrained=True)
    msg = str(err.value)
    assert "\n" not in msg
    assert "ResNet50_Weights.IMAGENET1K_V1 could not be fetched (<urlopen error no network (test)>)" in msg
    assert msg.endswith(f"put resnet50-0676ba61.pth (https://download.pytorch.org/models/resnet50-0676ba61.pth) "
                        f"at {torch_cache / 'resnet50-0676ba61.pth'}")


def test_pretrained_true_without_a_public_source_is_refused():
    with pytest.raises(ValueError, match="resatt: no public pretrained weights"):
        fer_models.create_model("resatt", pretrained=True)


def test_onet_probe_keeps_its_builtin_weights_unless_told_otherwise():
    torch.manual_seed(5)
    default = fer_models.create_model("onet_probe").trunk.conv1.weight
    builtin = fer_models.create_model("onet_probe", pretrained=True).trunk.conv1.weight
    torch.manual_seed(5)
    random = fer_models.create_model("onet_probe", pretrained=False).trunk.conv1.weight
    assert torch.equal(default, builtin) and not torch.equal(default, random)


def test_fer_models_never_imports_pipeline():
    for path in sorted((ROOT / "fer_models").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "pipeline" or n.startswith("pipeline.") for n in names), path
