"""The one scoring of a trained model on held-out rows, shared by ``evaluate`` and ``cv``.

The model sees the rows as its recipe's evaluation transform makes them (resize, centre crop,
normalise); with ``ten_crop`` also as the four corner and centre crops and their mirror images,
whose softmax outputs are averaged (test-time augmentation, the number the papers report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.shards.dataset import ShardDataset


@dataclass
class Scores:
    """Labels and softmax probabilities of the centre crop (and of ten crops, when asked for)."""

    y_true: np.ndarray
    centre: np.ndarray
    ten_crop: np.ndarray | None = None

    @property
    def reported(self) -> np.ndarray:
        """The probabilities of record: ten-crop when scored, else centre-crop."""
        return self.centre if self.ten_crop is None else self.ten_crop

    def accuracy(self, probs: np.ndarray | None = None) -> float:
        """Accuracy of ``probs`` (default: :attr:`reported`)."""
        p = self.reported if probs is None else probs
        return float((p.argmax(1) == self.y_true).mean())


def score(model: torch.nn.Module, ckpt: dict[str, Any], rows: ShardDataset, *, batch_size: int = 64,
          ten_crop: bool = False, device: str | torch.device = "cpu") -> Scores:
    """Score ``model`` (built from checkpoint ``ckpt``, already on ``device``) on ``rows``, read as its
    recipe prescribes; batches are moved to ``device`` (pinned first when it is a GPU)."""
    from pipeline.training.data import make_loader, with_transform
    from pipeline.training.loop import predict_proba
    from pipeline.training.transforms import eval_transform

    recipe, channels, device = ckpt["recipe"], int(ckpt["in_chans"]), torch.device(device)
    classes = list(ckpt["label_names"])  # labels in the order of the model's outputs
    plain = with_transform(rows, channels, eval_transform(recipe), classes)
    centre, y = predict_proba(model, make_loader(plain, batch_size, shuffle=False, device=device), device)
    ten = None
    if ten_crop:
        crops = with_transform(rows, channels, eval_transform(recipe, ten_crop=True), classes)
        ten, _ = predict_proba(model, make_loader(crops, max(1, batch_size // 10), shuffle=False, device=device),
                               device)
    return Scores(y, centre, ten)
