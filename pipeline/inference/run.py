"""The work of ``fer-pipeline predict``: every input through the predictor, as table rows.

:class:`PredictRun` walks the items of :func:`pipeline.inference.sources.expand` in order and
yields :class:`~pipeline.inference.table.Row` s as they come (a long video streams): one per
face, one per image or processed frame without a face, one per unreadable input (the rest go
on). Videos are read every ``every``-th frame, their faces followed from frame to frame by
:class:`~pipeline.inference.tracking.FaceTracker` unless ``track`` is off. With an annotator each
image (or video) is also written with its faces drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from pipeline.inference.annotate import Annotator
from pipeline.inference.predictor import Predictor
from pipeline.inference.sources import Item, Unreadable, frames, open_video, read_image
from pipeline.inference.table import Row


@dataclass
class Summary:
    images: int = 0
    videos: int = 0
    frames: int = 0
    faces: int = 0
    no_face: int = 0
    unreadable: int = 0
    annotated: list[Path] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"{self.images} image(s)"]
        if self.videos:
            parts.append(f"{self.videos} video(s), {self.frames} frame(s)")
        parts += [f"{self.faces} face(s)", f"{self.no_face} without a face", f"{self.unreadable} unreadable"]
        if self.annotated:
            parts.append(f"{len(self.annotated)} annotated file(s) in {Path(self.annotated[0]).parent}")
        return ", ".join(parts)


class PredictRun:
    """One ``predict`` run over ``items``; iterate :meth:`rows`, then read :attr:`summary`.

    Args:
        predictor: the model.
        every: process every ``every``-th video frame (1 = all).
        track: follow faces between video frames instead of detecting on each whole frame.
        redetect_every: with ``track``, a whole-frame detection every this many processed frames.
        annotator: writes the annotated copies (``None``: none).
        progress: show progress bars (tqdm, on stderr; off when stderr is not a terminal).
    """

    def __init__(self, predictor: Predictor, *, every: int = 1, track: bool = True, redetect_every: int = 10,
                 annotator: Annotator | None = None, progress: bool = False) -> None:
        if every < 1:
            raise ValueError(f"--every must be >= 1, got {every}")
        self.predictor, self.every, self.track, self.redetect_every = predictor, every, track, redetect_every
        self.annotator, self.progress = annotator, progress
        self.summary = Summary()

    def _bar(self, **kwargs):
        from tqdm import tqdm

        return tqdm(disable=None if self.progress else True, dynamic_ncols=True, **kwargs)

    def rows(self, items: list[Item]) -> Iterator[Row]:
        bar = self._bar(total=len(items), unit="input", desc="predict") if len(items) > 1 else None
        try:
            for item in items:
                try:
                    if item.kind == "missing":
                        raise Unreadable(f"{item.path}: {item.error}")
                    yield from (self._video(item) if item.kind == "video" else self._image(item))
                except Unreadable as exc:
                    self.summary.unreadable += 1
                    yield Row(source=item.path, status="unreadable", detail=str(exc))
                if bar is not None:
                    bar.update()
        finally:
            if bar is not None:
                bar.close()
            if self.annotator is not None:
                self.summary.annotated = list(self.annotator.written)

    def _faces_rows(self, source: str, faces, frame: int | None = None, time_s: float | None = None) -> list[Row]:
        if not faces:
            self.summary.no_face += 1
            return [Row(source=source, frame=frame, time_s=time_s, status="no_face")]
        self.summary.faces += len(faces)
        return [Row.of_face(source, i, f, frame, time_s) for i, f in enumerate(faces)]

    def _image(self, item: Item) -> Iterator[Row]:
        image = read_image(item.path)
        faces = self.predictor.predict_image(image, "photos")
        self.summary.images += 1
        if self.annotator is not None:
            self.annotator.write_image(item.rel, image, faces)
        yield from self._faces_rows(item.path, faces)

    def _video(self, item: Item) -> Iterator[Row]:
        from pipeline.inference.tracking import FaceTracker

        cap, info = open_video(item.path)
        out = None
        video = self.predictor.settings("video")
        tracker = FaceTracker(video.detection, self.redetect_every, video.device) if self.track else None
        bar = self._bar(total=math.ceil(info.frames / self.every) or None, unit="frame", desc=Path(item.path).name,
                        leave=False)
        read = 0
        try:
            latest: list = []
            for index, rgb in frames(cap, self.every, decode_all=self.annotator is not None):
                if out is None and self.annotator is not None:
                    out = self.annotator.video(item.rel, info.fps, rgb.shape[1], rgb.shape[0])
                if index % self.every == 0:
                    read += 1
                    faces = tracker(rgb) if tracker is not None else None
                    latest = self.predictor.predict_image(rgb, "video", faces=faces)
                    time_s = round(index / info.fps, 3) if info.fps > 0 else None
                    yield from self._faces_rows(item.path, latest, index, time_s)
                    bar.update()
                if out is not None:
                    out.write(rgb, latest)
            if read == 0:
                raise Unreadable(f"{item.path}: no frame could be decoded")
            self.summary.videos += 1
            self.summary.frames += read
            if out is not None:
                out.close()
                out = None
        finally:
            if out is not None:
                out.abort()
                self.annotator.written.remove(out.path)
            bar.close()
            cap.release()
