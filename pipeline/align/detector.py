"""Batched MTCNN face detection (facenet-pytorch) on the CPU or a GPU, robust to the library's traps.

- ``MTCNN.forward`` crashes on a batch where some images hold no face (facenet-pytorch #224):
  we call ``detect(batch, landmarks=True)`` and select faces ourselves.
- ``detect`` returns object arrays (``None`` for no face); probabilities are converted with ``float``.
- Batches must hold images of equal size: images are grouped by working size.
- An image smaller than ``min_face_size`` has an empty pyramid and crashes ``detect_face``:
  such images are reported as faceless without calling MTCNN.

Speed comes from a working-size downscale (``max_side``) and a pyramid fitted to the dataset
(``min_face_size``, ``factor``), not from batching alone (see ``bench/align.py``). On a GPU
(``device``, the align settings' resolved device) each batch's pyramid and the three networks run
there; boxes and landmarks come back to the CPU for the warp.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.align.settings import DetectionSettings

#: decimals kept for boxes and landmarks (pixels): makes crops independent of float noise
#: between thread counts / processes, so outputs are byte-identical across task runners.
COORD_DECIMALS = 2


@dataclass(frozen=True)
class Face:
    """One detected face in original image coordinates.

    Attributes:
        box: ``(x1, y1, x2, y2)``.
        landmarks: ``5 x 2`` array: left eye, right eye, nose, left and right mouth corner
            (left/right as seen in the image).
        prob: MTCNN O-net probability.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    prob: float


_LOCAL = threading.local()


def get_mtcnn(min_face_size: int, factor: float, thresholds: tuple[float, float, float], device: str = "cpu",
              channels_last: bool = False):
    """The MTCNN of these settings on ``device``, built once per thread (so once per Dask worker process).

    The weights ship inside facenet-pytorch: nothing is downloaded. One instance per thread
    because a thread-pool task runner may run two chunks at once. ``channels_last`` keeps the
    three networks' weights in NHWC, where PyTorch's CPU max-pooling (``ceil_mode``) is several
    times faster: ``predict`` uses it (about 2x faster detection, bench/predict.py); the align
    stage does not, so its outputs stay as they were, bit for bit.
    """
    cache = _LOCAL.__dict__.setdefault("mtcnn", {})
    key = (int(min_face_size), float(factor), tuple(float(t) for t in thresholds), str(device), bool(channels_last))
    if key not in cache:
        import torch
        from facenet_pytorch import MTCNN

        mtcnn = MTCNN(min_face_size=key[0], factor=key[1], thresholds=list(key[2]),
                      device=torch.device(key[3]), post_process=False, keep_all=True).eval()
        cache[key] = mtcnn.to(memory_format=torch.channels_last) if channels_last else mtcnn
    return cache[key]


def working_scale(h: int, w: int, s: DetectionSettings) -> float:
    """Factor from original to working image: down to ``max_side``, up to ``min_side``."""
    scale = 1.0
    if s.max_side and max(h, w) > s.max_side:
        scale = s.max_side / max(h, w)
    elif s.min_side and min(h, w) < s.min_side:
        scale = s.min_side / min(h, w)
    return scale


def _working_image(img: np.ndarray, s: DetectionSettings) -> tuple[np.ndarray, float, int]:
    """The image MTCNN sees, its scale and the pad (working pixels) added on each side."""
    import cv2

    h, w = img.shape[:2]
    scale = working_scale(h, w, s)
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    pad = int(round(s.pad * min(img.shape[:2])))
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(img), scale, pad


def detect_faces(images: Sequence[np.ndarray], s: DetectionSettings, device: str = "cpu", *,
                 channels_last: bool = False) -> list[list[Face]]:
    """All faces of each RGB uint8 image, highest probability first, found by MTCNN on ``device``
    (``channels_last``: see :func:`get_mtcnn`).

    Images are brought to working size, grouped by that size and detected in batches of
    ``s.batch_size``; results are mapped back to each image's original coordinates.
    """
    import torch

    mtcnn = get_mtcnn(s.min_face_size, s.factor, tuple(s.thresholds), device, channels_last)
    prepared = [_working_image(img, s) for img in images]
    results: list[list[Face]] = [[] for _ in images]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (work, _, _) in enumerate(prepared):
        if min(work.shape[:2]) >= s.min_face_size:  # else MTCNN's pyramid is empty: no face
            groups.setdefault(work.shape, []).append(i)
    with torch.inference_mode():
        for indices in groups.values():
            for start in range(0, len(indices), s.batch_size):
                batch = indices[start:start + s.batch_size]
                boxes, probs, points = mtcnn.detect(np.stack([prepared[i][0] for i in batch]), landmarks=True)
                for i, b, p, lm in zip(batch, boxes, probs, points):
                    _, scale, pad = prepared[i]
                    results[i] = _to_faces(b, p, lm, scale, pad)
    return results


def _to_faces(boxes, probs, points, scale: float, pad: int) -> list[Face]:
    """Faces of one image from MTCNN's object arrays, in original coordinates, best first."""
    if boxes is None or len(boxes) == 0:
        return []
    faces = []
    for box, prob, lm in zip(boxes, probs, points):
        box = np.round((np.asarray(box, dtype=np.float64) - pad) / scale, COORD_DECIMALS)
        lm = np.round((np.asarray(lm, dtype=np.float64).reshape(5, 2) - pad) / scale, COORD_DECIMALS)
        faces.append(Face(box=tuple(float(v) for v in box), landmarks=lm, prob=round(float(prob), 6)))
    return sorted(faces, key=lambda f: -f.prob)  # stable: ties keep MTCNN's order
