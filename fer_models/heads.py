"""Classification heads and the losses that belong to them.

AM-Softmax (Wang, Cheng, Liu, Liu, "Additive Margin Softmax for Face Verification", IEEE SPL 2018,
https://arxiv.org/abs/1801.05599), used by DNN-CBAM (paper 001), is split into a head and a loss:

* :class:`AMSoftmaxHead` (part of the network) returns ``s * cos(theta_j)``, the cosine between the
  L2-normalised feature and the L2-normalised weight of class ``j``, scaled by ``s``. At inference
  these are the logits (argmax and softmax work unchanged; ONNX export needs nothing special).
* :class:`AMSoftmaxLoss` (used by training) subtracts the additive margin from the target class,
  ``s * (cos(theta_y) - m)``, and takes the cross entropy. It needs labels, hence it is a loss,
  not part of ``forward``.

:func:`loss_for` gives the training loss a model is defined with: AM-Softmax for a model whose
``head`` is an :class:`AMSoftmaxHead`, cross entropy otherwise.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["AMSoftmaxHead", "AMSoftmaxLoss", "PooledLinearHead", "loss_for"]


class PooledLinearHead:
    """Mixin for a network whose head is global average pooling, ``self.head_drop`` (dropout) and
    ``self.fc`` (linear): timm's ``forward_head``/``forward`` split, written once (DFNet, ERFNet-att).
    The subclass defines ``forward_features``, ``head_drop`` and ``fc``."""

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout, linear; ``pre_logits`` returns the pooled features."""
        x = self.head_drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class AMSoftmaxHead(nn.Module):
    """Cosine classifier: ``logits = scale * normalize(x) @ normalize(W).T``.

    Args:
        in_features: feature width.
        num_classes: number of classes.
        scale: ``s`` (AM-Softmax paper: 30).
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = 30.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        self.scale = scale
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cos = F.linear(F.normalize(x, dim=1, eps=1e-8), F.normalize(self.weight, dim=1, eps=1e-8))
        return self.scale * cos


class AMSoftmaxLoss(nn.Module):
    """Cross entropy of ``logits - scale * margin * onehot(target)`` for logits ``scale * cos`` of an :class:`AMSoftmaxHead`.

    Args:
        margin: ``m`` (AM-Softmax paper: 0.35); 0 gives plain cross entropy on the cosine logits.
        scale: ``s``; must equal the head's ``scale`` (:func:`loss_for` takes it from the head).
        label_smoothing: passed to ``F.cross_entropy``.
    """

    def __init__(self, margin: float = 0.35, scale: float = 30.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.margin = margin
        self.scale = scale
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        margin = F.one_hot(target, logits.shape[1]).to(logits.dtype) * (self.scale * self.margin)
        return F.cross_entropy(logits - margin, target, label_smoothing=self.label_smoothing)


def loss_for(model: nn.Module, margin: float = 0.35) -> nn.Module:
    """The classification loss ``model`` is defined with (AM-Softmax if its ``head`` is cosine, else cross entropy)."""
    head = getattr(model, "head", None)
    if isinstance(head, AMSoftmaxHead):
        return AMSoftmaxLoss(margin=margin, scale=head.scale)
    return nn.CrossEntropyLoss()
