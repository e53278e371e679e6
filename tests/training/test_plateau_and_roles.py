"""The plateau scheduler watches the metric the recipe names; no test row may train or select."""

from __future__ import annotations

import pytest
import torch

from pipeline.training.optim import build_scheduler, step_scheduler
from train_helpers import tiny_shards


def _lr_after(monitor: str, epochs: list[dict]) -> float:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler({"name": "plateau", "factor": 0.5, "patience": 1, "monitor": monitor}, opt, 10)
    for metrics in epochs:
        step_scheduler(sched, metrics)
    return opt.param_groups[0]["lr"]


# the training loss keeps falling while PublicTest stalls: only a validation monitor lowers the lr
STALLED = [{"train_loss": 1.0 - 0.1 * e, "val_loss": 1.0, "val_acc": 0.5} for e in range(4)]


@pytest.mark.parametrize("monitor, lr", [("train_loss", 1.0), ("val_loss", 0.5), ("val_acc", 0.5)])
def test_plateau_watches_its_monitor(monitor, lr):
    assert _lr_after(monitor, STALLED) == lr


def test_rising_validation_accuracy_is_progress_not_a_plateau():
    rising = [{"train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.5 + 0.1 * e} for e in range(4)]
    assert _lr_after("val_acc", rising) == 1.0 and _lr_after("train_loss", rising) == 0.5


def test_without_validation_rows_a_validation_plateau_falls_back_to_the_training_loss():
    nan = float("nan")
    falling = [{"train_loss": 1.0 - 0.1 * e, "val_loss": nan, "val_acc": nan} for e in range(4)]
    assert _lr_after("val_loss", falling) == 1.0 and _lr_after("val_acc", falling) == 1.0


def test_the_monitor_survives_a_resume():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler({"name": "plateau", "monitor": "val_acc"}, opt, 10)
    again = build_scheduler({"name": "plateau"}, opt, 10)
    again.load_state_dict(sched.state_dict())
    assert again.monitor == "val_acc" and again.mode == "max"


def test_a_test_row_in_a_choosing_part_is_refused(tmp_path):
    from pipeline.training.data import RoleError, check_roles, load_split_data

    ratio_data = tiny_shards(tmp_path, "ckplus", "ratio") / "ckplus"

    data = load_split_data(ratio_data)
    check_roles(data.train, data.validation, data.test, ratio_data)  # the shards as written: fine
    leaked = data.test.subset([0])
    with pytest.raises(RoleError, match=r"1 test row\(s\) also in the validation part, e\.g\. "):
        check_roles(data.train, leaked, data.test, ratio_data)
    with pytest.raises(RoleError, match="also in the train part"):
        check_roles(leaked, data.validation, data.test, ratio_data)


def test_step_schedule_decays_every_few_epochs_after_its_start_and_resumes():
    """The FER2013 literature's schedule: the base lr until `start`, then × factor every `every`."""
    def lrs(sched, opt, epochs):
        seen = []
        for _ in range(epochs):
            seen.append(opt.param_groups[0]["lr"])
            step_scheduler(sched, {"train_loss": 1.0})
        return seen

    spec = {"name": "step", "start": 3, "every": 2, "factor": 0.5}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(spec, opt, 10)
    assert lrs(sched, opt, 6) == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5]
    state = sched.state_dict()
    again_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    again = build_scheduler(spec, again_opt, 10)
    again.load_state_dict(state)
    again_opt.param_groups[0]["lr"] = opt.param_groups[0]["lr"]  # the optimizer's own state dict
    assert lrs(again, again_opt, 3) == [0.5, 0.25, 0.25] == lrs(sched, opt, 3)


def test_step_schedule_needs_a_positive_period():
    from pipeline.core.schema import ParamsError, validate

    with pytest.raises(ParamsError, match="every"):
        validate({"train": {"ean": {"scheduler": {"name": "step", "every": 0}}}}, "params.yaml")
