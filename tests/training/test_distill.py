"""Distillation: the loss against a hand computation, weight transfer, the round loop and its stop rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from train_helpers import tiny_shards, write_params

from pipeline.cli import main
from pipeline.training import distill_rounds
from pipeline.training.distill_rounds import should_stop
from pipeline.training.losses import distillation_loss


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def test_distillation_loss_matches_a_hand_computation():
    student = np.array([[2.0, -1.0, 0.5], [0.0, 1.5, -0.5]])
    teacher = np.array([[1.0, 0.0, 3.0], [-2.0, 2.5, 0.5]])
    targets = np.array([0, 1])
    alpha, t = 0.5, 5.0
    kl = ce = 0.0
    for s, q, y in zip(student, teacher, targets):
        p_t, p_s = _softmax(q / t), _softmax(s / t)
        kl += sum(a * math.log(a / b) for a, b in zip(p_t, p_s))
        ce += -math.log(_softmax(s)[y])
    expected = alpha * t * t * kl / 2 + (1 - alpha) * ce / 2
    got = distillation_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor(targets), alpha, t)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    # alpha = 0 is plain cross-entropy; identical logits leave only the CE term
    ce_only = distillation_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor(targets), 0.0, t)
    assert ce_only.item() == pytest.approx(ce / 2, rel=1e-9)
    same = distillation_loss(torch.tensor(student), torch.tensor(student), torch.tensor(targets), 1.0, t)
    assert same.item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        distillation_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor(targets), 1.5, t)


@pytest.mark.parametrize("accs, patience, max_rounds, stop", [
    ([0.5], 1, 3, False),               # only the teacher: run round 1
    ([0.5, 0.6], 1, 3, False),          # improved: go on
    ([0.5, 0.6, 0.6], 1, 3, True),      # no improvement for 1 round
    ([0.5, 0.6, 0.55], 2, 5, False),    # patience 2: one bad round is not enough
    ([0.5, 0.6, 0.55, 0.6], 2, 5, True),
    ([0.5, 0.6, 0.7, 0.8], 1, 3, True),  # max rounds reached
])
def test_round_loop_stop_rule(accs, patience, max_rounds, stop):
    assert should_stop(accs, patience, max_rounds) is stop


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("distill")
    data = tiny_shards(base, "rafdb", "ratio")
    params = write_params(base / "params.yaml")
    torch.set_num_threads(1)
    assert main(["train", "--model", "ean", "--dataset", "rafdb", "--data", str(data), "--out", str(base / "models"),
                 "--params", str(params)]) == 0
    return base, data, params


@pytest.fixture
def fit_starts(monkeypatch):
    """The weights each distillation round's ``fit`` starts from, in call order."""
    seen = []
    real_fit = distill_rounds.fit

    def spy(model, *args, **kwargs):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(distill_rounds, "fit", spy)
    return seen


def test_round_one_student_starts_from_the_teacher_weights(trained, fit_starts, tmp_path):
    base, data, params = trained
    teacher = torch.load(base / "models" / "ean-rafdb" / "checkpoint.pt", weights_only=False)["state_dict"]
    models = tmp_path / "models"
    (models / "ean-rafdb").mkdir(parents=True)
    (models / "ean-rafdb" / "checkpoint.pt").write_bytes((base / "models" / "ean-rafdb" / "checkpoint.pt").read_bytes())
    assert main(["distill", "--dataset", "rafdb", "--data", str(data), "--models", str(models),
                 "--params", str(params)]) == 0
    assert fit_starts and all(torch.equal(fit_starts[0][k], teacher[k]) for k in teacher)
    # every round is recorded, the stop rule decided the count, the best student is kept
    rec = json.loads((models / "ean_distilled-rafdb" / "rounds.json").read_text())
    accs = [r["val_acc"] for r in rec["rounds"]]
    assert rec["rounds"][0]["round"] == 0 and len(fit_starts) == len(accs) - 1
    assert should_stop(accs, 1, 2) and not any(should_stop(accs[:i], 1, 2) for i in range(1, len(accs)))
    assert accs[rec["best_round"]] == max(accs)
    out = torch.load(models / "ean_distilled-rafdb" / "checkpoint.pt", weights_only=False)
    assert out["run_model"] == "ean_distilled" and out["val_acc"] == max(accs)
    round_plot = (models / "ean_distilled-rafdb" / "dvclive" / "plots" / "metrics" / "round" / "val_acc.tsv")
    assert len(round_plot.read_text().splitlines()) == 1 + len(accs)
    # round 2's student started from round 1's selected weights (the student became the teacher)
    if len(fit_starts) > 1:
        r1 = torch.load(models / "ean_distilled-rafdb" / "rounds" / "round-1" / "checkpoint.pt", weights_only=False)
        assert all(torch.equal(fit_starts[1][k], r1["state_dict"][k]) for k in r1["state_dict"])


def test_without_weight_transfer_the_student_starts_fresh(trained, fit_starts, tmp_path):
    base, data, _ = trained
    from pipeline.training.data import load_split_data

    teacher_path = base / "models" / "ean-rafdb" / "checkpoint.pt"
    teacher = torch.load(teacher_path, weights_only=False)["state_dict"]
    settings = {"alpha": 0.5, "temperature": 5, "max_rounds": 1, "patience": 1, "weight_transfer": False,
                "epochs": 1, "optimizer": {"name": "sgd", "lr": 0.05}}
    distill_rounds.distill(teacher_path, load_split_data(data / "rafdb"), settings, tmp_path / "out", dataset="rafdb")
    conv = [k for k in teacher if k.endswith("weight") and teacher[k].ndim == 4][0]
    assert len(fit_starts) == 1 and not torch.equal(fit_starts[0][conv], teacher[conv])


def test_mixup_mixes_inputs_and_weights_both_targets():
    from pipeline.training.losses import mix_batch, mixup_loss

    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    y = torch.tensor([0, 1, 2, 3])
    torch.manual_seed(0)
    mix = mix_batch(x, y, 0.4)
    torch.manual_seed(0)
    again = mix_batch(x, y, 0.4)
    assert torch.equal(mix.x, again.x) and mix.lam == again.lam  # seeded: repeatable
    assert 0.0 < mix.lam < 1.0 and sorted(mix.y_other.tolist()) == [0, 1, 2, 3]
    assert torch.allclose(mix.x[:, 0, 0, 0], mix.lam * y.float() + (1 - mix.lam) * mix.y_other.float())
    logits = torch.randn(4, 4)
    ce = torch.nn.functional.cross_entropy
    expected = mix.lam * ce(logits, y) + (1 - mix.lam) * ce(logits, mix.y_other)
    assert torch.allclose(mixup_loss(ce, logits, mix), expected)
    with pytest.raises(ValueError, match="mixup alpha"):
        mix_batch(x, y, 0.0)



def test_round_settings_set_the_students_weight_average(trained, monkeypatch, tmp_path):
    base, data, _ = trained
    from pipeline.training.data import load_split_data

    decays = []
    real_fit = distill_rounds.fit

    def spy(*args, **kwargs):
        decays.append(kwargs["ema_decay"])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(distill_rounds, "fit", spy)
    settings = {"alpha": 0.5, "temperature": 5, "max_rounds": 1, "patience": 1, "epochs": 1,
                "optimizer": {"name": "sgd", "lr": 0.05}, "ema": 0.5}
    teacher_path = base / "models" / "ean-rafdb" / "checkpoint.pt"
    distill_rounds.distill(teacher_path, load_split_data(data / "rafdb"), settings, tmp_path / "out", dataset="rafdb")
    student = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=False)
    assert decays == [0.5] and student["distill"]["ema"] == 0.5


def test_averaged_teacher_gives_the_mean_of_the_softened_outputs():
    from pipeline.training.losses import AveragedTeacher

    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    x, t = torch.randn(5, 4), 4.0
    logits = AveragedTeacher([a, b], t)(x)
    mean = (torch.softmax(a(x) / t, 1) + torch.softmax(b(x) / t, 1)) / 2
    assert torch.allclose(torch.softmax(logits / t, 1), mean, atol=1e-6)
    assert not torch.allclose(mean, torch.softmax(a(x) / t, 1), atol=1e-3)  # b counts
    # one teacher: the same soft labels as the teacher alone
    assert torch.allclose(torch.softmax(AveragedTeacher([a], t)(x) / t, 1), torch.softmax(a(x) / t, 1), atol=1e-6)


def test_co_teachers_join_every_round_and_key_the_rounds(trained, monkeypatch, tmp_path):
    base, data, _ = trained
    from pipeline.training.data import load_split_data
    from pipeline.training.losses import AveragedTeacher

    # the co-teacher: another checkpoint of the same classes (the teacher with its weights perturbed)
    teacher_path = base / "models" / "ean-rafdb" / "checkpoint.pt"
    ckpt = torch.load(teacher_path, weights_only=False)
    co_state = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    co_path = tmp_path / "co" / "checkpoint.pt"
    co_path.parent.mkdir()
    torch.save({**ckpt, "state_dict": co_state, "params_hash": "co-1"}, co_path)
    teachers = []
    real = distill_rounds.make_loss_fn

    def spy(*args, teacher=None, **kwargs):
        teachers.append(teacher)
        return real(*args, teacher=teacher, **kwargs)

    monkeypatch.setattr(distill_rounds, "make_loss_fn", spy)
    settings = {"alpha": 0.5, "temperature": 5, "max_rounds": 2, "patience": 2, "epochs": 1,
                "optimizer": {"name": "sgd", "lr": 0.05}, "co_teachers": ["co"]}
    split = load_split_data(data / "rafdb")
    distill_rounds.distill(teacher_path, split, settings, tmp_path / "out", dataset="rafdb", co_teachers=[co_path])
    assert len(teachers) == 2 and all(isinstance(t, AveragedTeacher) and len(t.teachers) == 2 for t in teachers)
    r1 = torch.load(tmp_path / "out" / "rounds" / "round-1" / "checkpoint.pt", weights_only=False)
    for t, previous in zip(teachers, (ckpt["state_dict"], r1["state_dict"])):
        assert all(torch.equal(t.teachers[0].state_dict()[k], previous[k]) for k in previous)  # the previous round
        assert all(torch.equal(t.teachers[1].state_dict()[k], co_state[k]) for k in co_state)  # the fixed co-teacher
    out = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=False)
    assert out["co_teachers"] == [str(co_path)]
    # another co-teacher is another run: the finished rounds are not reused
    torch.save({**ckpt, "state_dict": co_state, "params_hash": "co-2"}, co_path)
    teachers.clear()
    distill_rounds.distill(teacher_path, split, settings, tmp_path / "out", dataset="rafdb", co_teachers=[co_path])
    assert len(teachers) == 2
    # a co-teacher of other classes is refused, naming its file
    torch.save({**ckpt, "label_ids": list(ckpt["label_ids"])[::-1], "label_names": list(ckpt["label_names"])[::-1]},
               co_path)
    with pytest.raises(ValueError, match=str(co_path)):
        distill_rounds.distill(teacher_path, split, settings, tmp_path / "out2", dataset="rafdb", co_teachers=[co_path])
    # and one that reads another input
    torch.save({**ckpt, "recipe": {**ckpt["recipe"], "input": {**ckpt["recipe"]["input"], "px": 40}}}, co_path)
    with pytest.raises(ValueError, match="reads input"):
        distill_rounds.distill(teacher_path, split, settings, tmp_path / "out3", dataset="rafdb", co_teachers=[co_path])


def test_labelled_only_reads_the_rows_that_have_a_label():
    import torch.nn.functional as F

    from pipeline.shards.dataset import UNLABELLED
    from pipeline.training.losses import labelled_only

    logits = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor([2, UNLABELLED, 0, UNLABELLED])
    hard = labelled_only(F.cross_entropy)
    assert hard(logits, y).item() == pytest.approx(F.cross_entropy(logits[[0, 2]], y[[0, 2]]).item(), rel=1e-6)
    none = hard(logits, torch.full((4,), UNLABELLED))
    none.backward()  # a batch of transfer faces only: no hard term, and no NaN in the gradients
    assert none.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_a_transfer_set_adds_fresh_unlabelled_faces_to_every_round(trained, monkeypatch, tmp_path):
    from pipeline.shards.dataset import UNLABELLED, ConcatShards, ShardDataset
    from pipeline.training.data import RoleError, load_split_data

    base, data, _ = trained
    # another dataset's faces, of classes the teacher does not have: only its soft labels reach them
    source = tiny_shards(tmp_path, "kdef", "ratio", labels=(0, 2, 4), subjects=16) / "kdef"
    transfer = distill_rounds.load_transfer(source, per_round=6)
    assert len(transfer.faces) == len(ShardDataset(source, split="train", include_augmented=False))
    trains = []
    real = distill_rounds.make_loaders

    def spy(round_data, *args, **kwargs):
        trains.append(round_data.train)
        return real(round_data, *args, **kwargs)

    monkeypatch.setattr(distill_rounds, "make_loaders", spy)
    settings = {"alpha": 0.5, "temperature": 5, "max_rounds": 2, "patience": 2, "epochs": 1,
                "optimizer": {"name": "sgd", "lr": 0.05}, "transfer": {"source": "kdef", "rows": 6}}
    split = load_split_data(data / "rafdb")
    teacher_path = base / "models" / "ean-rafdb" / "checkpoint.pt"
    distill_rounds.distill(teacher_path, split, settings, tmp_path / "out", dataset="rafdb", transfer=transfer)
    assert len(trains) == 2 and all(isinstance(t, ConcatShards) for t in trains)
    drawn = []
    for t in trains:
        labelled, faces = t.datasets
        assert labelled.image_ids == split.train.image_ids and labelled.targets == split.train.targets
        assert len(faces) == 6 and faces.targets == [UNLABELLED] * 6
        assert set(faces.image_ids) <= set(transfer.faces.image_ids)
        drawn.append(faces.image_ids)
    assert drawn[0] != drawn[1]  # each round draws its own faces
    # the same faces again: the finished rounds are reused; other faces: new rounds
    trains.clear()
    distill_rounds.distill(teacher_path, split, settings, tmp_path / "out", dataset="rafdb", transfer=transfer)
    assert trains == []
    other = distill_rounds.load_transfer(tiny_shards(tmp_path / "b", "kdef", "ratio", labels=(0, 2)) / "kdef", 6)
    distill_rounds.distill(teacher_path, split, settings, tmp_path / "out", dataset="rafdb", transfer=other)
    assert len(trains) == 2
    # a test row among the faces is refused, naming the source
    tested = distill_rounds.TransferSet(split.test.view(unlabelled=True), 2, "t")
    with pytest.raises(RoleError, match="transfer row"):
        distill_rounds.distill(teacher_path, split, settings, tmp_path / "out4", dataset="rafdb", transfer=tested)


@pytest.mark.parametrize("key, value", [("co_teachers", ["onet_probe"]), ("transfer", {"source": "kdef"})])
def test_the_distill_stage_refuses_what_only_cv_takes_in_one_line(trained, tmp_path, capsys, key, value):
    import yaml

    base, data, params = trained
    doc = yaml.safe_load(params.read_text())
    doc["distill"].setdefault("rafdb", {})[key] = value
    changed = tmp_path / "params.yaml"
    changed.write_text(yaml.safe_dump(doc, sort_keys=False))
    code = main(["distill", "--dataset", "rafdb", "--data", str(data), "--models", str(base / "models"),
                 "--params", str(changed)])
    err = capsys.readouterr().err
    assert code == 2 and f"distill.rafdb.{key}" in err and len(err.strip().splitlines()) == 1
