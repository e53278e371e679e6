"""DFNet (paper 003): Table 2 parameter counts, DCM/FSA placement, local pretrained backbone, export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from zoo_checks import build

from fer_models.dfnet import DFNet, DilatedConvMultiScale
from fer_models.registry import model_default_cfg, model_variants


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# Exact counts of this implementation (7 classes); Table 2 rounds them to 0.01M.
EXPECTED = {
    "default": 66_533_959,  # Table 2: 66.53M
    "no_fsa": 57_089_095,  # 57.09M
    "no_dcm": 32_967_239,  # 32.97M
    "baseline": 23_522_375,  # 23.52M
    "fsa_as_written": 62_339_655,  # FSA exactly as the text describes it: no Table 2 row
}


@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_parameter_counts_reproduce_table_2(variant: str) -> None:
    count = n_params(DFNet(**model_variants("dfnet")[variant]))
    assert count == EXPECTED[variant]
    cfg = model_default_cfg("dfnet")
    paper = cfg["paper_params"] if variant == "default" else cfg["variants"].get(variant, {}).get("paper_params")
    if paper is not None:
        assert round(count / 1e6, 2) == paper / 1e6


def test_variants_cover_the_ablation_rows() -> None:
    variants = model_variants("dfnet")
    assert {v for v in variants if v != "fsa_as_written"} == {"default", "no_fsa", "no_dcm", "baseline"}
    assert set(model_default_cfg("dfnet")["variants"]) == {"no_fsa", "no_dcm", "baseline"}


def test_dcm_is_four_dilated_branches_fused_and_added_to_its_input() -> None:
    c, w = 2048, 512
    dcm = DilatedConvMultiScale(c)
    convs = [b[0] for b in dcm.branches]
    assert [(m.kernel_size, m.dilation, m.out_channels) for m in convs] == [
        ((1, 1), (1, 1), w), ((3, 3), (1, 1), w), ((3, 3), (2, 2), w), ((3, 3), (3, 3), w)
    ]
    assert n_params(dcm) == (c * w + 9 * c * w * 3) + 4 * 2 * w + 2 * c + c * c + 2 * c == 33_566_720
    small = DilatedConvMultiScale(16).eval()
    x = torch.randn(2, 16, 7, 7)
    assert small(x).shape == x.shape
    with torch.no_grad():
        small.proj[0].weight.zero_()  # 1x1 fusion off: BN(0) = 0 in eval, SiLU(0) = 0, only the residual is left
    torch.testing.assert_close(small(x), x)


def test_dcm_then_fsa_act_on_the_7x7x2048_map_before_pooling() -> None:
    model = build("dfnet").eval()
    seen: dict[str, tuple] = {}
    model.dcm.register_forward_hook(lambda m, i, o: seen.update(dcm_in=tuple(i[0].shape), dcm_out=o))
    model.fsa.register_forward_hook(lambda m, i, o: seen.update(fsa_in=i[0], fsa_out=tuple(o.shape)))
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 224, 224))
    assert seen["dcm_in"] == seen["fsa_out"] == tuple(feats.shape) == (1, 2048, 7, 7)
    assert seen["fsa_in"] is seen["dcm_out"]
    assert model.forward_head(feats, pre_logits=True).shape == (1, 2048)


def test_pretrained_path_loads_a_torchvision_resnet50_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(1)
    reference = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "resnet50.pth"
    torch.save(reference, path)

    torch.manual_seed(0)
    model = DFNet(pretrained_path=path)
    loaded = model.backbone.state_dict()
    assert set(loaded) == {k for k in reference if not k.startswith("fc.")}
    assert all(torch.equal(loaded[k], reference[k]) for k in loaded)
    assert model.fc.out_features == 7

    grey = DFNet(in_chans=1, dcm=False, fsa=False, pretrained_path=path)
    torch.testing.assert_close(grey.backbone.conv1.weight, reference["conv1.weight"].sum(dim=1, keepdim=True))


def test_pretrained_path_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        DFNet(dcm=False, fsa=False, pretrained_path=tmp_path / "missing.pth")
    bad = tmp_path / "not_resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, bad)
    with pytest.raises(ValueError, match="not_resnet.pth"):
        DFNet(dcm=False, fsa=False, pretrained_path=bad)


def test_backbone_knob_builds_a_smaller_resnet_with_matching_modules() -> None:
    from torchvision.models import resnet18

    m = DFNet(num_classes=7, backbone="resnet18").eval()
    ref = resnet18(weights=None)
    ref_backbone = sum(p.numel() for n, p in ref.named_parameters() if not n.startswith("fc."))
    assert m.num_features == 512
    assert sum(p.numel() for p in m.backbone.parameters()) == ref_backbone
    assert m.dcm.proj[0].in_channels == 512 and m.fc.in_features == 512
    with torch.no_grad():
        assert m.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2)
    with pytest.raises(ValueError, match="backbone 'vgg16'"):
        DFNet(backbone="vgg16")
