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
