"""Typed, validated settings of the ``align`` stage, built from ``params.yaml`` ``align:``.

``pipeline.core.params.section("align", dataset)`` merges ``align.defaults`` with the dataset's
overrides; :func:`AlignSettings.from_dict` checks every knob and names the bad one. The settings
are frozen dataclasses: hashable for the per-process MTCNN cache, picklable for Dask workers,
and serialised canonically (:meth:`AlignSettings.fingerprint`) to key resumable part files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

POLICIES = ("detect", "precropped")
FALLBACKS = ("redetect", "centre_crop")
COLOURS = ("grey", "rgb")
INTERPOLATIONS = ("nearest", "linear", "cubic", "area", "lanczos")
BORDERS = ("replicate", "reflect", "constant")


@dataclass(frozen=True)
class DetectionSettings:
    """MTCNN settings of one detection pass.

    Attributes:
        max_side: working size; images whose longer side exceeds it are downscaled (area
            interpolation) before detection, boxes and landmarks are mapped back. 0 = never.
        min_side: images whose shorter side is below it are upscaled before detection (small
            pre-cropped faces); 0 = never.
        pad: border added around the working image, as a fraction of its shorter side
            (replicated edge), so a face that fills the frame still fits MTCNN's square boxes.
        min_face_size: smallest face searched, in pixels of the working image: the first
            scale of MTCNN's image pyramid (bigger = fewer, smaller pyramid levels = faster).
        factor: ratio between pyramid levels (smaller = fewer levels = faster, coarser).
        thresholds: P-, R-, O-net probability thresholds.
        batch_size: images per MTCNN call (images of equal working size only).
    """

    max_side: int = 320
    min_side: int = 0
    pad: float = 0.0
    min_face_size: int = 20
    factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    batch_size: int = 16

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> "DetectionSettings":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
        s = cls(**{**d, "thresholds": tuple(float(t) for t in d.get("thresholds", cls.thresholds))})
        _check(len(s.thresholds) == 3 and all(0 <= t <= 1 for t in s.thresholds),
               f"{where}.thresholds must be three probabilities, got {list(s.thresholds)}")
        _check(s.min_face_size >= 12, f"{where}.min_face_size must be >= 12 (MTCNN's P-net window)")
        _check(0.3 <= s.factor < 1, f"{where}.factor must be in [0.3, 1), got {s.factor}")
        _check(s.max_side >= 0 and s.min_side >= 0, f"{where}.max_side/min_side must be >= 0")
        _check(0 <= s.pad <= 1, f"{where}.pad must be in [0, 1], got {s.pad}")
        _check(s.batch_size >= 1, f"{where}.batch_size must be >= 1")
        return s


@dataclass(frozen=True)
class AlignSettings:
    """Everything the align stage does to one dataset (see ``params.yaml`` ``align:``).

    Attributes:
        policy: ``detect`` (MTCNN, then 5-point alignment) or ``precropped`` (the input is
            already an aligned face: resize only).
        precropped_max_side: with ``detect``, images whose longer side is <= this are treated
            as pre-cropped (e.g. the CK+48 copy of CK+); 0 = never.
        verify: with ``precropped``, also run MTCNN and record what it finds (outcome stays
            ``precropped``; reason ``not_verified`` when no face is found).
        fallback: strategies tried in order when detection finds no face: ``redetect`` (a
            second MTCNN pass with the ``redetect`` settings) and ``centre_crop``; when the
            list is exhausted the image is quarantined with its reason.
        px: side of the stored square crop in pixels (not ``size``: DVC's run-cache drops keys so named).
        colour: ``grey`` or ``rgb`` crops.
        margin: border around the canonical 5-point template, as a fraction of the template's
            face box on each side (0 = ArcFace-tight crop, 0.25 = the face fills 2/3 of the crop).
        interpolation: OpenCV interpolation of warps and resizes.
        border: how pixels outside the source image are filled by the warp.
        centre_crop: fallback crop side as a fraction of the image's shorter side.
        min_input_side: images with a shorter side below this are quarantined (``too_small``).
        threads: torch threads per process (0 = leave torch's default).
        chunk_rows: manifest rows per chunk (one part file, one Prefect task).
        contact_sheet: ``n`` crops, ``tile`` px, ``seed`` of the contact sheet.
        device: where MTCNN runs (``cpu``, ``cuda:0``...): not an ``align`` param but the stage's
            resolved ``device`` (``params.yaml`` top level, or ``--device``). A GPU's float results may
            differ from the CPU's in the last bits, so a non-CPU device is part of :meth:`to_dict` and
            so of the parts' key; the CPU is left out, keeping CPU keys and outputs as they were.
    """

    policy: str = "detect"
    precropped_max_side: int = 0
    verify: bool = False
    fallback: tuple[str, ...] = ("centre_crop",)
    px: int = 112
    colour: str = "rgb"
    margin: float = 0.25
    interpolation: str = "area"
    border: str = "replicate"
    centre_crop: float = 0.8
    min_input_side: int = 16
    threads: int = 0
    chunk_rows: int = 256
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    redetect: DetectionSettings = field(default_factory=lambda: DetectionSettings(max_side=1024, min_face_size=20))
    contact_sheet: tuple[tuple[str, int], ...] = (("n", 36), ("seed", 0), ("tile", 64))
    device: str = "cpu"

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "align") -> "AlignSettings":
        """Validated settings from a merged ``align`` params mapping; errors name the key."""
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
        for key in ("detection", "redetect"):
            if key in d:
                d[key] = DetectionSettings.from_dict(dict(d[key] or {}), f"{where}.{key}")
        if "fallback" in d:
            d["fallback"] = tuple(d["fallback"] or ())
        if "contact_sheet" in d:
            sheet = {"n": 36, "seed": 0, "tile": 64, **dict(d["contact_sheet"] or {})}
            d["contact_sheet"] = tuple(sorted((k, int(v)) for k, v in sheet.items()))
        s = cls(**d)
        _check(s.policy in POLICIES, f"{where}.policy must be one of {POLICIES}, got {s.policy!r}")
        _check(all(f in FALLBACKS for f in s.fallback), f"{where}.fallback entries must be in {FALLBACKS}, got {list(s.fallback)}")
        _check(s.colour in COLOURS, f"{where}.colour must be one of {COLOURS}, got {s.colour!r}")
        _check(s.interpolation in INTERPOLATIONS, f"{where}.interpolation must be one of {INTERPOLATIONS}")
        _check(s.border in BORDERS, f"{where}.border must be one of {BORDERS}, got {s.border!r}")
        _check(8 <= s.px <= 1024, f"{where}.px must be in [8, 1024], got {s.px}")
        _check(0 <= s.margin <= 2, f"{where}.margin must be in [0, 2], got {s.margin}")
        _check(0 < s.centre_crop <= 1, f"{where}.centre_crop must be in (0, 1], got {s.centre_crop}")
        _check(s.chunk_rows >= 1 and s.min_input_side >= 1 and s.threads >= 0,
               f"{where}: chunk_rows and min_input_side must be >= 1, threads >= 0")
        return s

    @property
    def sheet(self) -> dict[str, int]:
        """The contact-sheet settings as a dict (``n``, ``seed``, ``tile``)."""
        return dict(self.contact_sheet)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every setting (``device``, as its kind, e.g. ``cuda``, only when it is
        not the CPU)."""
        d = dataclasses.asdict(self)
        d["contact_sheet"] = self.sheet
        d["device"] = d["device"].split(":")[0]  # which GPU of a machine does not change the numbers
        if d["device"] == "cpu":
            del d["device"]
        return d

    def fingerprint(self) -> str:
        """SHA-256 of the settings that change crops or outcomes (not threads, chunk size, sheet)."""
        d = self.to_dict()
        for key in ("threads", "chunk_rows", "contact_sheet"):
            d.pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
