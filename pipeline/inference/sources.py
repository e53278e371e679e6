"""What ``predict`` reads: files, folders (recursively), globs and videos, as images or frames.

:func:`expand` turns the command line's inputs into :class:`Item` s in a fixed order (each
argument in turn; a folder's or a glob's files sorted), each a ``image`` or ``video`` by its
extension, or ``missing`` with the reason (an input that matches nothing is reported, the rest
go on). :func:`read_image` decodes a photograph upright (EXIF orientation applied, as a phone's
photo is meant to be seen); :func:`frames` reads every ``every``-th frame of a video with OpenCV.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm", ".pbm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
_GLOB_CHARS = set("*?[")


class Unreadable(ValueError):
    """An input that cannot be decoded (the message names the file and why)."""


@dataclass(frozen=True)
class Item:
    """One input: ``path`` as given or found, ``kind`` (``image``, ``video`` or ``missing``),
    ``rel`` (its path below the folder or glob root it came from: names its annotated copy) and
    ``error`` (why a ``missing`` item has nothing to read)."""

    path: str
    kind: str
    rel: str
    error: str | None = None


def kind_of(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


def _known(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard (names are kept relative to it)."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[:next((i for i, p in enumerate(parts) if _GLOB_CHARS & set(p)), len(parts))]]
    return Path(*fixed) if fixed else Path(".")


def expand(inputs: list[str]) -> list[Item]:
    """The items of ``inputs`` in order, each file once (see the module doc)."""
    items: list[Item] = []
    seen: set[Path] = set()

    def add(path: Path, rel: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            items.append(Item(str(path), kind_of(path), rel.as_posix()))

    for arg in inputs:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _known(p) and not p.name.startswith("."))
            if not found:
                items.append(Item(arg, "missing", Path(arg).name, "no images or videos in this folder"))
            for p in found:
                add(p, Path(path.resolve().name or "input") / p.relative_to(path))
        elif path.is_file():
            add(path, Path(path.name))
        elif _GLOB_CHARS & set(arg):
            root = _glob_root(arg)
            matches = sorted(Path(p) for p in glob.glob(arg, recursive=True))
            files = [p for p in matches if p.is_file()]
            for d in (p for p in matches if p.is_dir()):
                files += sorted(q for q in d.rglob("*") if q.is_file() and _known(q))
            if not files:
                items.append(Item(arg, "missing", arg, "no file matches this pattern"))
            for p in files:
                try:
                    rel = p.relative_to(root)
                except ValueError:
                    rel = Path(p.name)
                add(p, rel)
        else:
            items.append(Item(arg, "missing", path.name, "no such file or folder"))
    return items


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` as upright ``H x W x 3`` uint8 RGB (grey replicated, alpha dropped,
    16 bits reduced; EXIF orientation applied by OpenCV's decoder)."""
    import cv2

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if not data:
        raise Unreadable(f"{path}: empty file")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. more pixels than OpenCV's decoders accept
        raise Unreadable(f"{path}: not decodable by OpenCV ({' '.join(str(exc).split())[-120:]})") from None
    if img is None:
        raise Unreadable(f"{path}: not a decodable image")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frames: int          # as the container says (0 when it does not say)
    width: int
    height: int


def open_video(path: str | Path):
    """An opened ``cv2.VideoCapture`` and its :class:`VideoInfo`; :class:`Unreadable` when OpenCV
    cannot open the file or read a first frame."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise Unreadable(f"{path}: not a readable video")
    info = VideoInfo(fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
                     frames=max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)),
                     width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return cap, info


def frames(cap, every: int = 1, decode_all: bool = False) -> Iterator[tuple[int, np.ndarray | None]]:
    """``(index, RGB frame)`` of every frame of an opened capture, the frame being ``None`` for
    the frames between every ``every``-th one (not decoded, unless ``decode_all``: then they come
    as RGB too, e.g. to copy them into an annotated video)."""
    import cv2

    index = 0
    while True:
        wanted = index % every == 0
        if wanted or decode_all:
            ok, bgr = cap.read()
            if not ok:
                return
            yield index, np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        else:
            if not cap.grab():
                return
            yield index, None
        index += 1
