"""onet_probe: MTCNN ONet's pretrained conv1-3, frozen, + a linear head (a teacher, not a paper model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fer_models.onet_probe import FaceProbe, onet_trunk
from zoo_checks import build


def test_trunk_is_onets_first_three_convolutions_with_facenet_pytorchs_weights() -> None:
    from facenet_pytorch.models.mtcnn import ONet

    onet = ONet(pretrained=True).eval()
    trunk = onet_trunk(pretrained=True).eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        h = onet.pool1(onet.prelu1(onet.conv1(x)))
        h = onet.pool2(onet.prelu2(onet.conv2(h)))
        expected = onet.prelu3(onet.conv3(h))
        assert torch.equal(trunk(x), expected)
    assert expected.shape == (2, 64, 8, 8)
    random = onet_trunk(pretrained=False)
    assert not torch.equal(random.conv1.weight, trunk.conv1.weight)


@pytest.mark.parametrize("img_size, width", [(44, 64 * 7 * 7), (48, 64 * 8 * 8)])
def test_head_width_follows_the_input_size(img_size: int, width: int) -> None:
    model = build("onet_probe", img_size=img_size, pretrained=False)
    assert model.fc.in_features == width
    assert model(torch.randn(3, 1, img_size, img_size)).shape == (3, 7)
    other = 92 - img_size
    with pytest.raises(ValueError, match=f"built for {img_size} px input"):
        model(torch.randn(3, 1, other, other))


def test_only_the_head_trains_unless_the_trunk_is_unfrozen() -> None:
    model = build("onet_probe", pretrained=False).train()
    model(torch.randn(4, 1, 44, 44)).logsumexp(1).sum().backward()
    assert all(p.grad is None for p in model.trunk.parameters())
    assert model.fc.weight.grad is not None and torch.isfinite(model.fc.weight.grad).all()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 64 * 7 * 7 * 7 + 7

    tuned = build("onet_probe", pretrained=False, freeze=False).train()
    tuned(torch.randn(4, 1, 44, 44)).logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in tuned.trunk.parameters())


def test_grey_input_is_read_as_three_equal_channels() -> None:
    grey = build("onet_probe", pretrained=False, in_chans=1).eval()
    rgb = FaceProbe(in_chans=3, pretrained=False).eval()
    rgb.load_state_dict(grey.state_dict())
    x = torch.randn(2, 1, 44, 44)
    with torch.no_grad():
        assert torch.allclose(grey(x), rgb(x.repeat(1, 3, 1, 1)))
    with pytest.raises(ValueError, match="1 or 3 input channels"):
        FaceProbe(in_chans=2, pretrained=False)


@pytest.mark.realdata
def test_pretrained_features_separate_real_expressions_of_unseen_subjects(realdata: Path) -> None:
    """What the probe is for: on real faces, the pretrained trunk's features classify expressions of
    subjects never seen in fitting far better than the same trunk with random weights."""
    import numpy as np
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    raw = realdata / "ckplus48-dev"
    if not raw.is_dir():
        pytest.skip("ckplus48-dev not present")
    files = sorted(raw.glob("*/*.png"))
    x = torch.tensor(np.stack([np.asarray(Image.open(f).convert("L").resize((48, 48)), np.float32) for f in files]))
    x = ((x / 255 - 0.5) / 0.5)[:, None]  # the pipeline's normalisation
    y = np.array([f.parent.name for f in files])
    subjects = np.array([f.name.split("_")[0] for f in files])

    def accuracy(pretrained: bool, seed: int = 0) -> float:
        torch.manual_seed(seed)
        probe = FaceProbe(img_size=48, pretrained=pretrained).eval()
        with torch.no_grad():
            feats = probe.forward_features(x).numpy()
        hits = 0
        for train, test in StratifiedGroupKFold(10, shuffle=True, random_state=0).split(feats, y, subjects):
            assert not set(subjects[train]) & set(subjects[test])
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000))
            hits += int((clf.fit(feats[train], y[train]).predict(feats[test]) == y[test]).sum())
        return hits / len(y)

    # measured: pretrained 0.919; random trunks (seeds 0, 1) 0.875 and 0.815; raw pixels 0.801
    pretrained, random = accuracy(True), max(accuracy(False, seed) for seed in (0, 1))
    assert pretrained > 0.88 and pretrained > random + 0.03, (pretrained, random)


def test_logits_do_not_depend_on_memory_layout_of_input_or_weights() -> None:
    """The trunk runs in channels_last whatever it is given (several times faster on CPU); the head
    still reads the features in C, H, W order, so the logits equal those of ONet's own layout."""
    torch.manual_seed(0)
    model = build("onet_probe", img_size=48, pretrained=True).eval()
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        reference = model.fc(model.norm(model.trunk(x.expand(-1, 3, -1, -1)).flatten(1)))
        assert torch.allclose(model(x), reference, atol=1e-4)
        model.to(memory_format=torch.channels_last)
        assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last)), reference, atol=1e-4)
        assert torch.allclose(model(x), reference, atol=1e-4)
