"""Losses: the model's own classification loss (cross-entropy, or DNN-CBAM's AM-Softmax), and
EAN's teacher-student distillation loss."""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import torch
import torch.nn.functional as F


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      alpha: float, temperature: float,
                      hard: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy) -> torch.Tensor:
    """EAN's eq. (4): ``alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, y)``.

    The one teacher-student loss of the project: EAN's distillation rounds use it with the
    cross-entropy; a recipe with a ``teacher`` (any model learning from another) with its own loss
    as ``hard`` (e.g. AM-Softmax). ``alpha`` always weighs the soft term, ``temperature`` is T.

    ``p^T = softmax(logits / T)``; the KL term is averaged over the batch (``batchmean``, the
    mathematical KL per sample) and the teacher is a constant (no gradient). The hard-label
    term is the ordinary cross-entropy at T = 1, as in the teacher phase (eq. 2) and in
    Hinton et al., whose T² factor keeps the soft term's gradients on the CE scale — the
    reading the paper's T² implies (eq. 6 writes the student's softened output, which together
    with T² would scale the hard term by 1/T² as well).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    t = float(temperature)
    soft_teacher = F.softmax(teacher_logits.detach() / t, dim=1)
    log_soft_student = F.log_softmax(student_logits / t, dim=1)
    kl = F.kl_div(log_soft_student, soft_teacher, reduction="batchmean")
    return alpha * t * t * kl + (1.0 - alpha) * hard(student_logits, targets)


class AveragedTeacher(torch.nn.Module):
    """Several frozen teachers as one (an ensemble's soft labels): its logits are
    ``T * log(mean_i softmax(z_i / T))``, so that their softmax at ``temperature`` T, which
    :func:`distillation_loss` takes, is exactly the mean of the teachers' softened outputs."""

    def __init__(self, teachers: list[torch.nn.Module], temperature: float) -> None:
        super().__init__()
        if not teachers:
            raise ValueError("AveragedTeacher needs at least one teacher")
        self.teachers = torch.nn.ModuleList(teachers)
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        log_p = torch.stack([F.log_softmax(m(x) / t, dim=1) for m in self.teachers])
        return t * (torch.logsumexp(log_p, dim=0) - math.log(len(self.teachers)))


def labelled_only(criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                  ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``criterion`` over the rows that have a label (not :data:`~pipeline.shards.dataset.UNLABELLED`:
    a transfer set's faces, which only the teacher's soft term reads); zero when the batch has none."""
    from pipeline.shards.dataset import UNLABELLED

    def hard(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        keep = targets != UNLABELLED
        if not bool(keep.any()):
            return logits.sum() * 0.0
        return criterion(logits[keep], targets[keep])

    return hard


class Mix(NamedTuple):
    """A mixup batch: inputs ``x`` = ``lam * x + (1 - lam) * x[perm]``, both target vectors, ``lam``."""

    x: torch.Tensor
    y: torch.Tensor
    y_other: torch.Tensor
    lam: float


def mixup_alpha(recipe: dict[str, Any]) -> float:
    """The recipe's ``augment.mixup`` (0 when absent: no mixup)."""
    return float((recipe.get("augment") or {}).get("mixup") or 0.0)


def mix_batch(x: torch.Tensor, y: torch.Tensor, alpha: float) -> Mix:
    """Mixup (Zhang et al., 2018) of a batch with its own permutation, ``lam ~ Beta(alpha, alpha)``.

    Draws from torch's global generator, so a seeded run mixes the same way every time.
    """
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(len(y))
    return Mix(lam * x + (1.0 - lam) * x[perm], y, y[perm], lam)


def mixup_loss(criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], logits: torch.Tensor,
               mix: Mix) -> torch.Tensor:
    """``lam * criterion(logits, y) + (1 - lam) * criterion(logits, y[perm])``.

    Right for any loss whose target-free part does not depend on ``y`` (cross-entropy, AM-Softmax,
    and the distillation loss, whose teacher term is then counted once).
    """
    return mix.lam * criterion(logits, mix.y) + (1.0 - mix.lam) * criterion(logits, mix.y_other)


LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def make_loss_fn(criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, mixup: float = 0.0,
                 teacher: torch.nn.Module | None = None, alpha: float = 0.0, temperature: float = 1.0) -> LossFn:
    """The training step's loss ``(model, x, y) -> (loss, logits)`` for :func:`pipeline.training.loop.fit`.

    With ``mixup`` > 0 the batch is mixed first (:func:`mix_batch`). With a frozen ``teacher`` the
    student learns from its soft labels on the same (mixed) batch: :func:`distillation_loss` with
    ``criterion`` as the hard term; without one, ``criterion`` alone.
    """
    def loss_fn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
        mix = mix_batch(x, y, mixup) if mixup > 0 else None
        if mix is not None:
            x = mix.x
        logits = model(x)
        soft = None
        if teacher is not None:
            with torch.no_grad():
                soft = teacher(x)

        def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            if soft is None:
                return criterion(out, target)
            return distillation_loss(out, soft, target, alpha, temperature, hard=criterion)

        return (loss(logits, y) if mix is None else mixup_loss(loss, logits, mix)), logits

    return loss_fn


def build_criterion(recipe: dict[str, Any], model: torch.nn.Module) -> torch.nn.Module:
    """The training loss of a recipe's ``loss`` setting.

    ``{name: model, margin: 0.35}`` (default): the loss the model is defined with
    (``fer_models.heads.loss_for``) — AM-Softmax with additive margin ``margin`` for a model with
    a cosine head (DNN-CBAM), cross-entropy otherwise. ``{name: ce, label_smoothing: 0.1}``:
    plain cross-entropy whatever the head.
    """
    spec = dict(recipe.get("loss") or {})
    name = spec.get("name", "model")
    if name == "model":
        from fer_models.heads import loss_for

        return loss_for(model, margin=float(spec.get("margin", 0.35)))
    if name == "ce":
        return torch.nn.CrossEntropyLoss(label_smoothing=float(spec.get("label_smoothing", 0.0)))
    raise ValueError(f"unknown loss {name!r} (known: model, ce)")
