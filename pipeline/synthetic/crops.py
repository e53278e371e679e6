"""Labelled synthetic face crops, framed like a dataset's own crops: the data of stage ``pretrain``.

Not a dataset layout (those are in :mod:`.layouts`): arrays in memory, for learning expression
features before a model meets a small real dataset (issue 8). Each face is a CK+-style sequence of
a new identity (:func:`pipeline.synthetic.layouts.ckplus_sequence`), expression ramping from
neutral to its peak; its last ``frames`` frames are rendered as ``render`` x ``render`` grey crops
and cut to ``box`` (fractions of the render: left, top, right, bottom). The default box frames
the face from the brows to the chin and cheek to cheek, as the widely shared CK+48 crops do; the
synthetic sample's own crops show the whole head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.core.labels import LABEL_NAMES
from pipeline.synthetic.layouts import ckplus_sequence, rng_for, subject_identity

#: CK+48's framing, as fractions of the rendered crop: brows near the top, chin at the bottom.
CKPLUS48_BOX = (0.125, 0.2, 0.875, 0.95)


@dataclass(frozen=True)
class Crop:
    """One synthetic face crop: grey ``image`` (uint8, H x W), its unified ``label`` name and an ``id``."""

    image: np.ndarray
    label: str
    id: str


def crop_box(render: int, box: Sequence[float]) -> tuple[int, int, int, int]:
    """``box`` (fractions left, top, right, bottom) in pixels of a ``render``-pixel crop."""
    if len(box) != 4:
        raise ValueError(f"box {list(box)}: need 4 fractions (left, top, right, bottom)")
    x0, y0, x1, y1 = (int(round(float(f) * render)) for f in box)
    if not (0 <= x0 < x1 <= render and 0 <= y0 < y1 <= render):
        raise ValueError(f"box {list(box)}: not inside the {render}-pixel render with left < right, top < bottom")
    return x0, y0, x1, y1


def face_crops(classes: Sequence[str], per_class: int, seed: int, *, render: int = 64,
               box: Sequence[float] = CKPLUS48_BOX, frames: int = 3) -> list[Crop]:
    """``per_class`` sequences of every class of ``classes`` (unified names), ``frames`` crops each.

    Every sequence has its own identity, so crops of one identity share a class and a sequence.
    The same arguments give the same pixels.
    """
    unknown = [c for c in classes if c not in LABEL_NAMES]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; known: {', '.join(LABEL_NAMES)}")
    if per_class < 1 or frames < 1:
        raise ValueError(f"per_class {per_class} and frames {frames} must be at least 1")
    x0, y0, x1, y1 = crop_box(render, box)
    plan_rng = rng_for(seed, "pretrain", "plan")
    crops = []
    for c in classes:
        for i in range(per_class):
            subject = f"{c}{i:05d}"
            n = int(plan_rng.integers(max(8, frames + 1), 13))
            seq = {"subject": subject, "sequence": "001", "label": c, "frames": n, "intensity": 1.0}
            ident = subject_identity(seed, "pretrain", subject, glasses_p=0.0)
            for f, img in ckplus_sequence(seq, seed, ident, frames=range(n - frames + 1, n + 1), crop=render).items():
                crops.append(Crop(np.ascontiguousarray(img[y0:y1, x0:x1]), c, f"{subject}_{f:02d}"))
    return crops
