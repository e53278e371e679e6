"""CK+ (extended Cohn-Kanade), in either of its two common layouts, detected automatically.

``official`` (the distribution's two archives unpacked side by side)::

    <root>/cohn-kanade-images/S005/001/S005_001_00000001.png ... S005_001_00000011.png
    <root>/Emotion/S005/001/S005_001_00000011_emotion.txt     (one float: 0..7, see labels.py)

An Emotion file is UTF-8 text (a byte-order mark is dropped) holding one whole number written as a
float (``3.0000000e+00``). A code that is not a whole number (``7.5``) or outside 0..7 quarantines
the sequence's frames as ``unknown_label``; a file that is not one number, or not UTF-8 text, as
``bad_label_file`` (the detail names the file, and the line for an encoding problem).

A labelled sequence's frames are sorted by frame number. The ``peak_frames`` frames ending at the
labelled (peak) frame take the sequence's label; the first ``neutral_frames`` frames not already
taken are ``neutral``. Every other frame is accounted for in the quarantine as
``frame_not_selected``; frames of sequences without an emotion file as ``unlabelled_sequence``.
``FACS/``, ``Landmarks/`` and other folders are not read.

``ck+48`` (the widely shared pre-cropped copy: 48x48 crops, one folder per class)::

    <root>/<class>/S005_001_00000011.png   class in anger contempt disgust fear happy sadness
                                           surprise (neutral where a copy has it)

Class folders are matched without regard to case (``Anger``, ``HAPPY``), and the unified name
works too (``happiness`` for ``happy``): copies of CK+48 differ in such details. The native label
recorded is the folder's own name.

Both: image_id ``ckplus/S005_001_00000011``, subject ``S005``; ``extra`` holds ``sequence``,
``frame``, ``layout`` and (official) ``role`` (``peak`` or ``neutral``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from pipeline.core.labels import NATIVE_TO_UNIFIED, UnknownLabelError
from pipeline.ingest.readers.base import (
    Candidate, Quarantined, Reader, Scan, ScanItem, TextFileError, ignored_info, label_fields, list_files,
    read_text,
)

FRAME_RE = re.compile(r"^(S\d{3})_(\d{3})_(\d{8})\.png$", re.IGNORECASE)
EMOTION_RE = re.compile(r"^(S\d{3})_(\d{3})_(\d{8})_emotion\.txt$", re.IGNORECASE)
EMOTION_MAX_BYTES = 1024  # an Emotion file holds one number ("   3.0000000e+00", 17 bytes); larger: not read
CK48_CLASSES = tuple(NATIVE_TO_UNIFIED["ckplus48"])
# a class folder's name, lower-cased, -> its CK+48 code: the codes and the unified names
CK48_FOLDERS = {**{unified: code for code, unified in NATIVE_TO_UNIFIED["ckplus48"].items()},
                **{code: code for code in CK48_CLASSES}}


def _emotion_code(text: str, name: str) -> str:
    """The integer code of an Emotion file's text (``"   3.0000000e+00"`` -> ``"3"``).

    Raises ``ValueError`` for text that is not one number and :class:`UnknownLabelError` for a
    number that is not a whole one (``7.5`` is no code: never rounded or truncated to one).
    """
    stripped = text.strip()
    try:
        value = float(stripped)
    except ValueError:
        raise ValueError(f"{name}: {stripped[:40]!r} is not one number (expected a label code like "
                         f"3.0000000e+00)") from None
    if not value.is_integer():  # also nan and inf
        raise UnknownLabelError(f"{name}: label code {stripped!r} is not a whole number (codes 0..7)")
    return str(int(value))


class CkplusReader(Reader):
    """Reader of CK+ (see the module docstring)."""

    name = "ckplus"
    layouts = {
        "official": "<root>/cohn-kanade-images/Sxxx/yyy/Sxxx_yyy_zzzzzzzz.png with "
                    "<root>/Emotion/Sxxx/yyy/Sxxx_yyy_zzzzzzzz_emotion.txt",
        "ck+48": "<root>/<class>/Sxxx_yyy_zzzzzzzz.png, class in " + " ".join(CK48_CLASSES),
    }

    def detect_layout(self, root: Path) -> str:
        if (root / "cohn-kanade-images").is_dir():
            if not (root / "Emotion").is_dir():
                raise self.layout_error(root, "cohn-kanade-images/ found but no Emotion/ folder of labels")
            return "official"
        if root.is_dir() and any(p.is_dir() and p.name.lower() in CK48_FOLDERS for p in root.iterdir()):
            return "ck+48"
        raise self.layout_error(root, "neither cohn-kanade-images/ nor any CK+48 class folder found")

    def scan(self, root: Path, cfg: dict[str, Any]) -> Scan:
        root = Path(root)
        layout = self.validate_root(root)
        if layout == "official":
            peak, neutral = int(cfg.get("peak_frames", 3)), int(cfg.get("neutral_frames", 1))
            if peak < 1 or neutral < 0:
                raise ValueError(f"ingest.ckplus: peak_frames must be >= 1 and neutral_frames >= 0, "
                                 f"got {peak} and {neutral}")
            images, others = list_files(root / "cohn-kanade-images", root)
            info = {"layout": layout, "peak_frames": peak, "neutral_frames": neutral}
            if others:
                info["ignored"] = ignored_info(others, "not image files")
            return Scan(layout, self._official(root, images, peak, neutral), info, total=len(images))
        images, others = list_files(root, root)
        info = {"layout": layout}
        if others:
            info["ignored"] = ignored_info(others, "not image files")
        return Scan(layout, self._ck48(root, images), info, total=len(images))

    # official layout ------------------------------------------------------------------------
    def _official(self, root: Path, images: list[str], peak: int, neutral: int) -> Iterator[ScanItem]:
        sequences: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for rel in images:
            parts = rel.split("/")
            m = FRAME_RE.match(parts[-1])
            if not m or len(parts) != 4 or parts[1] != m.group(1) or parts[2] != m.group(2):
                yield Quarantined(rel, "bad_name", f"{rel}: expected cohn-kanade-images/Sxxx/yyy/"
                                                   f"Sxxx_yyy_zzzzzzzz.png")
                continue
            sequences.setdefault((m.group(1), m.group(2)), []).append((int(m.group(3)), rel))
        for (subject, seq), frames in sorted(sequences.items()):
            frames.sort()
            yield from self._sequence(root, subject, seq, frames, peak, neutral)

    def _sequence(self, root: Path, subject: str, seq: str, frames: list[tuple[int, str]],
                  peak: int, neutral: int) -> Iterator[ScanItem]:
        name = f"{subject}_{seq}"
        label_dir = root / "Emotion" / subject / seq
        label_files = sorted(p for p in label_dir.glob("*.txt") if EMOTION_RE.match(p.name)) \
            if label_dir.is_dir() else []
        problem = None
        if not label_files:
            problem = ("unlabelled_sequence", f"sequence {name} has no Emotion/{subject}/{seq}/*_emotion.txt")
        elif len(label_files) > 1:
            problem = ("ambiguous_label", f"sequence {name} has {len(label_files)} emotion files")
        else:
            lf = label_files[0]
            rel_lf = lf.relative_to(root).as_posix()
            try:
                native = _emotion_code(read_text(lf, rel_lf, max_bytes=EMOTION_MAX_BYTES), rel_lf)
                label, label_name = label_fields("ckplus", native)
            except TextFileError as exc:  # not UTF-8 text: names the file and the line already
                problem = ("bad_label_file", str(exc))
            except OSError as exc:  # e.g. a folder named like an Emotion file, no permission
                problem = ("bad_label_file", f"{rel_lf}: cannot read ({exc.strerror or type(exc).__name__})")
            except ValueError as exc:  # UnknownLabelError is a ValueError too
                code = "unknown_label" if isinstance(exc, UnknownLabelError) else "bad_label_file"
                problem = (code, str(exc) if str(exc).startswith(rel_lf) else f"{rel_lf}: {exc}")
            else:
                peak_frame = int(EMOTION_RE.match(lf.name).group(3))
                numbers = [f for f, _ in frames]
                if peak_frame not in numbers:
                    problem = ("label_frame_missing", f"{rel_lf} names frame {peak_frame}, which is not "
                                                      f"among the sequence's images")
        if problem:
            for _, rel in frames:
                yield Quarantined(rel, problem[0], f"{rel}: {problem[1]}")
            return
        end = numbers.index(peak_frame) + 1
        peak_idx = set(range(max(0, end - peak), end))
        neutral_idx = set([i for i in range(len(frames)) if i not in peak_idx][:neutral])
        neutral_label, neutral_name = label_fields("ckplus", "0")
        for i, (frame, rel) in enumerate(frames):
            if i in peak_idx:
                role, lab, lab_name, nat = "peak", label, label_name, native
            elif i in neutral_idx:
                role, lab, lab_name, nat = "neutral", neutral_label, neutral_name, "0"
            else:
                yield Quarantined(rel, "frame_not_selected",
                                  f"{rel}: frame {frame} of {name} is neither among the last {peak} frames "
                                  f"up to the peak nor the first {neutral} (ingest.ckplus params)")
                continue
            yield Candidate(
                source=rel, image_id=f"ckplus/{name}_{frame:08d}", label=lab, label_name=lab_name,
                native_label=nat, subject=subject, source_split=None, path=root / rel,
                extra={"layout": "official", "sequence": name, "frame": frame, "role": role},
            )

    # CK+48 layout ----------------------------------------------------------------------------
    def _ck48(self, root: Path, images: list[str]) -> Iterator[ScanItem]:
        for rel in images:
            parts = rel.split("/")
            if len(parts) != 2:
                yield Quarantined(rel, "bad_name", f"{rel}: expected <class>/Sxxx_yyy_zzzzzzzz.png "
                                                   f"directly under a class folder")
                continue
            folder, fname = parts
            m = FRAME_RE.match(fname)
            if not m:
                yield Quarantined(rel, "bad_name", f"{rel}: file name is not Sxxx_yyy_zzzzzzzz.png")
                continue
            try:
                label, label_name = label_fields("ckplus48", CK48_FOLDERS.get(folder.lower(), folder))
            except UnknownLabelError as exc:
                yield Quarantined(rel, "unknown_label", f"{rel}: class folder {folder!r}: {exc}")
                continue
            subject, seq, frame = m.group(1).upper(), m.group(2), int(m.group(3))
            yield Candidate(
                source=rel, image_id=f"ckplus/{subject}_{seq}_{frame:08d}", label=label, label_name=label_name,
                native_label=folder, subject=subject, source_split=None, path=root / rel,
                extra={"layout": "ck+48", "sequence": f"{subject}_{seq}", "frame": frame},
            )
