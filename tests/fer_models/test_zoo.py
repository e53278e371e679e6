"""What every model of the zoo must do, over ``fer_models.list_models()`` and each one's variants:
train (finite logits of the right shape, a finite gradient for every trainable parameter), export
to ONNX with the same outputs, and initialise deterministically from the seed. Each runs at the
input size its paper uses (``default_cfgs[...]["input_size"]``). Per-model files test the papers'
specifics (structure, parameter counts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from zoo_checks import build, check_deterministic_init, check_forward_backward, check_onnx

import fer_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VARIANTS = [(name, variant) for name in fer_models.list_models() for variant in fer_models.model_variants(name)]


def test_the_zoo_holds_the_five_papers_and_the_teacher():
    assert fer_models.list_models() == ["dfnet", "dnn_cbam", "ean", "erfnet_att", "onet_probe", "resatt"]


@pytest.mark.parametrize(("name", "variant"), VARIANTS, ids=[f"{n}-{v}" for n, v in VARIANTS])
def test_every_variant_trains_and_exports_at_its_papers_input_size(name: str, variant: str, tmp_path: Path) -> None:
    input_size = tuple(fer_models.model_default_cfg(name)["input_size"])
    model = build(name, in_chans=input_size[0], **fer_models.model_variants(name)[variant])
    check_forward_backward(model, input_size)
    check_onnx(model, input_size, tmp_path)


@pytest.mark.parametrize("name", fer_models.list_models())
def test_the_seed_decides_the_initial_weights(name: str) -> None:
    check_deterministic_init(name)
