"""Per-dataset policy: what becomes of every image — detected, precropped, fallback or quarantined.

:func:`align_images` applies the dataset's policy to a batch of images and returns one crop (or
``None``) and one :class:`Outcome` per image, so every input is accounted for.
:func:`align_faces` aligns every face of one photograph (used by ``predict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.align.detector import Face, detect_faces
from pipeline.align.image_io import convert_colour, to_rgb
from pipeline.align.settings import AlignSettings
from pipeline.align.warp import centre_crop, resize_square, warp_face

OUTCOMES = ("detected", "precropped", "fallback", "quarantined")


@dataclass(frozen=True)
class Outcome:
    """What happened to one image (one row of ``outcomes.parquet`` without its ``image_id``).

    Attributes:
        outcome: ``detected``, ``precropped``, ``fallback`` or ``quarantined``.
        reason: short code: why a fallback or quarantine happened (``no_face``, ``too_small``,
            ``unreadable``, ``bad_landmarks``), ``redetect`` for a face found by the second pass,
            ``not_verified`` for a pre-cropped image MTCNN found no face in; ``None`` otherwise.
        prob: probability of the kept face (``None`` when none was detected).
        box: ``[x1, y1, x2, y2]`` of the kept face in the input image.
        landmarks: 10 values ``x1, y1, ..., x5, y5`` (eyes, nose, mouth corners).
        n_faces: faces MTCNN found (``None`` when detection did not run).
    """

    outcome: str
    reason: str | None = None
    prob: float | None = None
    box: list[float] | None = None
    landmarks: list[float] | None = None
    n_faces: int | None = None

    @classmethod
    def from_face(cls, outcome: str, face: Face | None, n_faces: int | None, reason: str | None = None) -> "Outcome":
        if face is None:
            return cls(outcome, reason, None, None, None, n_faces)
        return cls(outcome, reason, face.prob, list(face.box), face.landmarks.reshape(-1).tolist(), n_faces)


def _finish(crop: np.ndarray, s: AlignSettings) -> np.ndarray:
    return np.ascontiguousarray(convert_colour(crop, s.colour))


def _warp(image: np.ndarray, face: Face, s: AlignSettings) -> np.ndarray | None:
    try:
        return _finish(warp_face(image, face.landmarks, s.px, s.margin, s.interpolation, s.border), s)
    except ValueError:
        return None


def align_images(images: Sequence[np.ndarray | None], s: AlignSettings) -> list[tuple[np.ndarray | None, Outcome]]:
    """One ``(crop, outcome)`` per input, in order; ``None`` marks an image that did not decode.

    Inputs are uint8 grey, RGB or RGBA arrays (RGB order; grey is replicated for MTCNN). Crops are ``size`` x ``size`` uint8 arrays (grey or RGB); the crop is ``None`` exactly
    when the outcome is ``quarantined``.
    """
    images = [None if img is None else to_rgb(img) for img in images]
    results: list[tuple[np.ndarray | None, Outcome] | None] = [None] * len(images)
    to_detect: list[int] = []
    to_verify: list[int] = []
    for i, img in enumerate(images):
        if img is None:
            results[i] = (None, Outcome("quarantined", "unreadable"))
        elif min(img.shape[:2]) < s.min_input_side:
            results[i] = (None, Outcome("quarantined", "too_small"))
        elif s.policy == "precropped" or (s.precropped_max_side and max(img.shape[:2]) <= s.precropped_max_side):
            if s.verify:
                to_verify.append(i)
            results[i] = (_finish(resize_square(img, s.px, s.interpolation), s), Outcome("precropped"))
        else:
            to_detect.append(i)

    for i, faces in zip(to_verify, detect_faces([images[i] for i in to_verify], s.detection, s.device)):
        face = faces[0] if faces else None
        reason = None if faces else "not_verified"
        results[i] = (results[i][0], Outcome.from_face("precropped", face, len(faces), reason))

    pending = _detect_into(results, images, to_detect, s, pass_settings=s.detection, reason=None)
    for strategy in s.fallback:
        if not pending:
            break
        if strategy == "redetect":
            pending = _detect_into(results, images, pending, s, pass_settings=s.redetect, reason="redetect")
        elif strategy == "centre_crop":
            for i in pending:
                why = results[i][1]
                crop = _finish(centre_crop(images[i], s.px, s.centre_crop, s.interpolation), s)
                results[i] = (crop, Outcome("fallback", why.reason, why.prob, why.box, why.landmarks, why.n_faces))
            pending = []
    return [r for r in results if r is not None]


def _detect_into(results: list, images: Sequence[np.ndarray | None], indices: list[int], s: AlignSettings,
                 pass_settings, reason: str | None) -> list[int]:
    """Detect and warp ``indices``; record quarantine outcomes for misses and return the misses."""
    misses = []
    for i, faces in zip(indices, detect_faces([images[i] for i in indices], pass_settings, s.device)):
        crop = _warp(images[i], faces[0], s) if faces else None
        if crop is not None:
            results[i] = (crop, Outcome.from_face("detected", faces[0], len(faces), reason))
        else:
            why = "bad_landmarks" if faces else "no_face"
            results[i] = (None, Outcome.from_face("quarantined", faces[0] if faces else None, len(faces), why))
            misses.append(i)
    return misses


def align_faces(image_rgb: np.ndarray, s: AlignSettings,
                faces: Sequence[Face] | None = None) -> list[tuple[np.ndarray, Outcome]]:
    """Every face of one RGB photograph, aligned like the dataset crops, most probable first.

    Args:
        image_rgb: ``H x W x 3`` uint8 RGB (grey and RGBA are converted).
        s: the settings, e.g. ``AlignSettings.from_dict(section("align", "photos"))``.
        faces: faces already found (e.g. followed from the previous video frame); default:
            detect them with ``s.detection``.

    Returns:
        ``(crop, outcome)`` per face (outcome ``detected``, ``n_faces`` = all faces found);
        an empty list when there is no face.
    """
    image_rgb = to_rgb(image_rgb)
    if min(image_rgb.shape[:2]) < s.min_input_side:
        return []
    if faces is None:
        faces = detect_faces([image_rgb], s.detection, s.device)[0]
    out = []
    for face in faces:
        crop = _warp(image_rgb, face, s)
        if crop is not None:
            out.append((crop, Outcome.from_face("detected", face, len(faces))))
    return out
