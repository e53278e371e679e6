"""The recipe's preprocessing and augmentation (pipeline/training/transforms.py)."""

import pytest
import torch

from pipeline.training.transforms import eval_transform, train_transform

GREY = {"px": 44, "resize": 48, "channels": 1, "mean": [0.5], "std": [0.5]}


def _img(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 60, 60), generator=g, dtype=torch.uint8)


def _names(t) -> list[str]:
    return [type(s).__name__ for s in t.transforms]


def test_train_transform_output_and_steps():
    recipe = {"input": GREY, "augment": {"crop": "random", "flip": 0.5, "rotation": 10, "scale": [0.9, 1.1],
                                         "translate": 0.05, "brightness": 0.2, "contrast": 0.2}}
    t = train_transform(recipe)
    names = _names(t)
    assert "RandomAffine" in names and "RandomRotation" not in names and "ColorJitter" in names
    out = t(_img())
    assert out.shape == (1, 44, 44) and out.dtype == torch.float32
    assert -1.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_rotation_alone_keeps_random_rotation():
    names = _names(train_transform({"input": GREY, "augment": {"crop": "five", "rotation": 10}}))
    assert "RandomRotation" in names and "RandomAffine" not in names and "ColorJitter" not in names


def test_train_transform_repeats_under_the_same_seed():
    t = train_transform({"input": GREY, "augment": {"crop": "random", "flip": 0.5, "scale": [0.8, 1.2],
                                                    "translate": 0.1, "brightness": 0.3}})
    torch.manual_seed(3)
    a = torch.stack([t(_img(i)) for i in range(8)])
    torch.manual_seed(3)
    b = torch.stack([t(_img(i)) for i in range(8)])
    torch.manual_seed(4)
    c = torch.stack([t(_img(i)) for i in range(8)])
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eval_transform_centre_and_ten_crop():
    img = _img()
    centre = eval_transform({"input": GREY})(img)
    ten = eval_transform({"input": GREY}, ten_crop=True)(img)
    assert centre.shape == (1, 44, 44) and ten.shape == (10, 1, 44, 44)
    assert torch.equal(ten[4], centre)  # ten_crop's fifth crop is the centre crop


def test_unknown_crop_is_refused():
    with pytest.raises(ValueError, match="augment.crop"):
        train_transform({"input": GREY, "augment": {"crop": "diagonal"}})


def test_equalize_applies_in_training_and_evaluation_alike():
    dark = (_img().float() * 0.25).to(torch.uint8)  # a dim photo: values 0..63
    spec = {**GREY, "equalize": True}
    plain = eval_transform({"input": GREY})(dark)
    equal = eval_transform({"input": spec})(dark)
    assert float(plain.max()) < -0.4 and float(equal.max()) > 0.9  # stretched over the full range
    assert torch.equal(eval_transform({"input": spec}, ten_crop=True)(dark)[4], equal)
    train = train_transform({"input": spec, "augment": {"crop": "center"}})
    assert "RandomEqualize" in _names(train) and torch.equal(train(dark), equal)
