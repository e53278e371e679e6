"""Losses: the model's own classification loss (cross-entropy, or DNN-CBAM's AM-Softmax), and
EAN's teacher-student distillation loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      alpha: float, temperature: float) -> torch.Tensor:
    """EAN's eq. (4): ``alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, y)``.

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
    ce = F.cross_entropy(student_logits, targets)
    return alpha * t * t * kl + (1.0 - alpha) * ce


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
