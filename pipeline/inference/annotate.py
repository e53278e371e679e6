"""``predict --annotate DIR``: copies of the inputs with each face's box, label and confidence drawn.

Images keep their format (other formats become PNG) and their path below the folder or glob
they came from; a video becomes an MP4 (AVI stays AVI) at its own frame rate, every frame
written, each showing the latest prediction. Files are written whole or not at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.core.atomic import write_bytes
from pipeline.inference.predictor import FacePrediction

KEEP_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: box colours (BGR), one per class index, told apart in colour and in grey
PALETTE = ((48, 48, 255), (0, 200, 255), (60, 220, 60), (255, 160, 0), (200, 60, 200), (255, 255, 255),
           (0, 130, 255), (160, 255, 160))


def draw(image_rgb: np.ndarray, faces: Sequence[FacePrediction], names: Sequence[str]) -> np.ndarray:
    """A BGR copy of ``image_rgb`` with each face's box and ``"<index> <label> <confidence>%"``."""
    import cv2

    img = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    h, w = img.shape[:2]
    thick = max(2, round(min(h, w) / 300))
    for i, face in enumerate(faces):
        colour = PALETTE[list(names).index(face.label) % len(PALETTE)] if face.label in names else PALETTE[0]
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        text = f"{i} {face.label} {face.confidence:.0%}"
        scale = max(0.45, min(2.5, (x2 - x1) / 160))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thick // 2))
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(h - base - 1, y2 + th + 4)  # above the box, else below
        tx = min(max(0, x1), max(0, w - tw - 2))
        cv2.rectangle(img, (tx, ty - th - 3), (tx + tw + 2, ty + base), colour, -1)
        cv2.putText(img, text, (tx + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(1, thick // 2),
                    cv2.LINE_AA)
    return img


class Annotator:
    """Writes the annotated copies under ``out_dir`` (names: see the module doc; a name used twice
    in one run gets ``-1``, ``-2``... before its suffix)."""

    def __init__(self, out_dir: str | os.PathLike, names: Sequence[str]) -> None:
        self.out_dir, self.names = Path(out_dir), list(names)
        self.used: set[Path] = set()
        self.written: list[Path] = []

    def _target(self, rel: str, suffix: str) -> Path:
        base = self.out_dir / Path(rel).with_suffix(suffix)
        path, n = base, 0
        while path in self.used:
            n += 1
            path = base.with_name(f"{base.stem}-{n}{suffix}")
        self.used.add(path)
        return path

    def write_image(self, rel: str, image_rgb: np.ndarray, faces: Sequence[FacePrediction]) -> Path:
        """Write the annotated copy of the image whose input name is ``rel``; return its path."""
        import cv2

        suffix = Path(rel).suffix.lower()
        path = self._target(rel, suffix if suffix in KEEP_SUFFIXES else ".png")
        params = [cv2.IMWRITE_JPEG_QUALITY, 92] if path.suffix in (".jpg", ".jpeg") else []
        ok, buf = cv2.imencode(path.suffix, draw(image_rgb, faces, self.names), params)
        if not ok:
            raise ValueError(f"{path}: could not encode the annotated image")
        write_bytes(path, buf.tobytes())
        self.written.append(path)
        return path

    def video(self, rel: str, fps: float, width: int, height: int) -> "VideoOut":
        suffix = ".avi" if Path(rel).suffix.lower() == ".avi" else ".mp4"
        out = VideoOut(self._target(rel, suffix), fps, width, height, self.names)
        self.written.append(out.path)
        return out


class VideoOut:
    """An annotated video being written; :meth:`close` puts it in place (:meth:`abort` drops it)."""

    def __init__(self, path: Path, fps: float, width: int, height: int, names: Sequence[str]) -> None:
        import cv2

        self.path, self.names = path, names
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.stem}.partial{path.suffix}")  # the suffix picks the container
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
        self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps if fps > 0 else 25.0, (width, height))
        if not self.writer.isOpened():
            raise ValueError(f"{path}: OpenCV cannot write this video")

    def write(self, frame_rgb: np.ndarray, faces: Sequence[FacePrediction]) -> None:
        self.writer.write(draw(frame_rgb, faces, self.names))

    def close(self) -> None:
        self.writer.release()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.release()
        self.tmp.unlink(missing_ok=True)
