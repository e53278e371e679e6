"""The training loop's speed levers: batch-wise augmentation (bit for bit the per-sample result),
freed memory kept for reuse, and mixed precision (the recipe's ``amp``: validated, ignored with a
notice where it cannot run, bf16 on a CPU that has it, fp16 with a GradScaler on CUDA; resumable)."""

from __future__ import annotations

import copy
import resource

import pytest
import torch
import yaml
from train_helpers import RECIPE, tiny_shards

from pipeline.core.schema import ParamsError, validate
from pipeline.training.data import load_split_data, make_loader, with_transform
from pipeline.training.loop import amp_dtype, amp_mode, cpu_bf16_supported, fit, keep_freed_memory
from pipeline.training.train_model import train_model
from pipeline.training.transforms import BatchableCompose, train_transform

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EAN_INPUT = {"px": 44, "resize": 48, "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3}


@pytest.fixture(scope="module")
def ratio_data(tmp_path_factory):
    return tiny_shards(tmp_path_factory.mktemp("ratio"), "ckplus", "ratio")


def _images(n: int, channels: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sides = [48, 40, 56]  # stored sizes may differ from the recipe's resize
    return [torch.randint(0, 256, (channels, sides[i % 3], sides[i % 3]), generator=g, dtype=torch.uint8)
            for i in range(n)]


@pytest.mark.parametrize(("spec", "augment"), [
    (EAN_INPUT, {"crop": "five", "flip": 0.5}),  # paper 004's recipe
    ({"px": 20, "resize": 24, "channels": 1, "mean": [0.4], "std": [0.3], "equalize": True},
     {"crop": "center", "flip": 0.3}),
    ({"px": 43, "resize": 48, "channels": 1}, {"crop": "five", "flip": 1.0}),  # odd margins
    ({"px": 48, "resize": 48, "channels": 1}, {"crop": "five"}),  # no crop room, no flip
    (EAN_INPUT, {"crop": "random", "flip": 0.5}),  # the FER2013 literature's RandomCrop(44)
    ({"px": 43, "resize": 48, "channels": 1}, {"crop": "random"}),  # odd room, no flip
])
def test_a_batch_is_the_per_sample_results_bit_for_bit_with_the_same_draws(spec, augment):
    t = train_transform({"input": spec, "augment": augment})
    assert isinstance(t, BatchableCompose)
    images = _images(40, spec["channels"])
    torch.manual_seed(5)
    one_by_one = torch.stack([t(img) for img in images])
    after_one_by_one = torch.get_rng_state()
    torch.manual_seed(5)
    batch = t.batch(images)
    assert torch.equal(batch, one_by_one)
    assert torch.equal(torch.get_rng_state(), after_one_by_one)  # the run's random stream goes on alike
    if augment.get("flip") or augment.get("crop") == "random":
        torch.manual_seed(6)
        assert not torch.equal(t.batch(images), one_by_one)  # another seed, other flips or crops


@pytest.mark.parametrize("augment", [{"crop": "random", "rotation": 10}, {"crop": "five", "rotation": 10},
                                     {"crop": "five", "erasing": 0.5}, {"crop": "five", "brightness": 0.2}])
def test_other_augmentations_stay_per_sample(augment):
    t = train_transform({"input": EAN_INPUT, "augment": augment})
    assert not hasattr(t, "batch")


def test_the_loader_batches_whole_batches_and_gives_the_same_epoch(ratio_data):
    from torchvision.transforms import v2

    data = load_split_data(ratio_data / "ckplus")
    recipe = {"input": {**RECIPE["input"], "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3},
              "augment": RECIPE["augment"]}
    t = train_transform(recipe)
    calls = []
    batch = t.batch
    t.batch = lambda images: calls.append(len(images)) or batch(images)

    def epoch(transform):
        torch.manual_seed(1)
        loader = make_loader(with_transform(data.train, 3, transform), 5, shuffle=True,
                             generator=torch.Generator().manual_seed(2))
        return [(x, y) for x, y in loader]

    fast, slow = epoch(t), epoch(v2.Compose(list(t.transforms)))
    assert calls == [len(x) for x, _ in fast]  # one call per batch, the last one shorter
    assert len(fast) == len(slow) and all(torch.equal(a, c) and torch.equal(b, d)
                                          for (a, b), (c, d) in zip(fast, slow))


@pytest.mark.skipif(not hasattr(resource, "getrusage"), reason="needs getrusage")
def test_kept_memory_is_reused_without_page_faults():
    from pipeline.training.loop import _glibc

    if _glibc() is None:
        pytest.skip("glibc malloc only")
    keep_freed_memory()

    def faults_of_one_step() -> int:  # a step's worth of large blocks, allocated, written, freed
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(12 << 20).fill_(1.0)  # 48 MB, above any mmap threshold of glibc's
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    # The heap needs a few steps to settle: a 64-byte-aligned block (torch's) does not fit the hole an
    # equal one left behind while small blocks of other threads sit beside it, so the first steps grow
    # the heap (about 6 seen) until two holes take turns. Fresh memory from the kernel faults 12,288
    # pages per step every step; the settled heap, none.
    warm_up = [faults_of_one_step() for _ in range(30)]
    settled = [faults_of_one_step() for _ in range(5)]
    assert min(warm_up[-10:]) < 1000 and max(settled) < 1000, (warm_up, settled)


def test_fit_keeps_deterministic_results_without_filling_new_memory(tmp_path):
    torch.utils.deterministic.fill_uninitialized_memory = True
    a = _tiny_fit(tmp_path / "a", "cpu", "off")
    assert torch.utils.deterministic.fill_uninitialized_memory is False  # no NaN pass over every new tensor
    b = _tiny_fit(tmp_path / "b", "cpu", "off")
    assert torch.are_deterministic_algorithms_enabled()
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)


# --- mixed precision ---------------------------------------------------------------------------------
def test_amp_knob_is_checked_in_params_and_in_the_loop():
    params = {"train": {"defaults": {"amp": False}, "ean": {"amp": "bf16"}, "dnn": {"amp": "fp8"}}}
    with pytest.raises(ParamsError) as err:
        validate(copy.deepcopy(params), "params.yaml")
    assert str(err.value).startswith("params.yaml: train.dnn.amp: input should be 'off', 'bf16' or 'fp16'")
    validate(yaml.safe_load("train:\n  defaults: {amp: off}\n  ean: {amp: bf16}\n"))  # a bare off is false
    assert amp_mode(False) == amp_mode(None) == amp_mode("off") == "off"
    with pytest.raises(ValueError, match="amp must be one of off, bf16, fp16"):
        amp_mode("fp8")


def test_fp16_on_the_cpu_is_ignored_with_a_one_line_notice(ratio_data, tmp_path, capsys):
    assert amp_dtype("fp16", torch.device("cpu")) is None
    notice = capsys.readouterr().err.strip().splitlines()
    assert notice == ["amp: fp16 needs CUDA; training in float32 on cpu"]
    data = load_split_data(ratio_data / "ckplus")
    plain, _ = train_model(data, "ean", dict(RECIPE), tmp_path / "plain", dataset="ckplus")
    ignored, _ = train_model(data, "ean", {**RECIPE, "amp": "fp16"}, tmp_path / "fp16", dataset="ckplus")
    assert "amp: fp16 needs CUDA" in capsys.readouterr().err
    assert ignored.history == plain.history  # float32, as without the knob
    assert all(torch.equal(plain.best_state[k], ignored.best_state[k]) for k in plain.best_state)


@pytest.mark.skipif(not cpu_bf16_supported(), reason="this CPU has no native bf16 (AVX512-BF16 / AMX)")
def test_bf16_on_the_cpu_trains_in_bf16_repeats_and_resumes(ratio_data, tmp_path):
    data = load_split_data(ratio_data / "ckplus")
    recipe = {**RECIPE, "epochs": 3, "channels_last": True}
    plain, _ = train_model(data, "ean", recipe, tmp_path / "plain", dataset="ckplus")
    full, _ = train_model(data, "ean", {**recipe, "amp": "bf16"}, tmp_path / "full", dataset="ckplus")
    assert full.history != plain.history  # autocast ran: other rounding
    assert abs(full.history[-1]["train_loss"] - plain.history[-1]["train_loss"]) < 0.2  # the same learning
    with pytest.raises(KeyboardInterrupt):
        train_model(data, "ean", {**recipe, "amp": "bf16"}, tmp_path / "cut", dataset="ckplus", stop_after_epoch=1)
    resumed, _ = train_model(data, "ean", {**recipe, "amp": "bf16"}, tmp_path / "cut", dataset="ckplus")
    assert resumed.resumed_from == 1 and resumed.history == full.history
    assert all(torch.equal(full.best_state[k], resumed.best_state[k]) for k in full.best_state)


def _tiny_fit(run_dir, device, amp, stop_after_epoch=None):
    from pipeline.training.recipe import seed_everything

    seed_everything(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 3)).to(device)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(16, 3, 12, 12, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(4)]

    def loss_fn(m, x, y):
        logits = m(x)
        return torch.nn.functional.cross_entropy(logits, y), logits

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return fit(model, loss_fn, optimizer, None, batches, None, epochs=3, device=torch.device(device),
               run_dir=run_dir, run_key="k", generator=torch.Generator(), amp=amp,
               stop_after_epoch=stop_after_epoch)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (fp16 autocast and its GradScaler)")
def test_fp16_on_cuda_scales_the_loss_and_resumes_exactly(tmp_path):
    full = _tiny_fit(tmp_path / "full", "cuda", "fp16")
    with pytest.raises(KeyboardInterrupt):
        _tiny_fit(tmp_path / "cut", "cuda", "fp16", stop_after_epoch=1)
    scaler = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["scaler"]
    assert scaler is not None and scaler["scale"] > 0  # the GradScaler's state travels with last.pt
    resumed = _tiny_fit(tmp_path / "cut", "cuda", "fp16")

    def losses(result):  # (no validation part: val_loss is nan, which equals nothing)
        return [(r["train_loss"], r["train_acc"]) for r in result.history]

    assert resumed.resumed_from == 1 and losses(resumed) == losses(full)
    assert all(torch.equal(full.best_state[k], resumed.best_state[k]) for k in full.best_state)
    assert losses(_tiny_fit(tmp_path / "fp32", "cuda", "off")) != losses(full)  # fp16 autocast did run
