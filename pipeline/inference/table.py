"""``predict``'s table: one row per face, per image (or frame) without a face, per unreadable input.

Columns (JSON keys): ``source`` (the file), ``frame`` and ``time_s`` (video only), ``face`` (index
in the image, most probable detection first), the box ``x1 y1 x2 y2`` (pixels of the input; a
``box`` list in JSON), ``detector_prob`` (MTCNN), ``label``, ``confidence`` (its probability),
one probability per class (``p_<class>`` in CSV, a ``probabilities`` mapping in JSON), ``status``
(``face``, ``no_face`` or ``unreadable``) and ``detail`` (why an input is unreadable).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence, TextIO

from pipeline.inference.predictor import FacePrediction

STATUSES = ("face", "no_face", "unreadable")


@dataclass
class Row:
    source: str
    frame: int | None = None
    time_s: float | None = None
    face: int | None = None
    box: list[float] | None = None
    detector_prob: float | None = None
    label: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    status: str = "face"
    detail: str | None = None

    @classmethod
    def of_face(cls, source: str, index: int, face: FacePrediction, frame: int | None = None,
                time_s: float | None = None) -> "Row":
        return cls(source=source, frame=frame, time_s=time_s, face=index, box=list(face.box),
                   detector_prob=face.detector_prob, label=face.label, confidence=round(face.confidence, 6),
                   probabilities={k: round(v, 6) for k, v in face.probabilities.items()})

    def as_json(self) -> dict:
        return asdict(self)


def csv_header(names: Sequence[str]) -> list[str]:
    return ["source", "frame", "time_s", "face", "x1", "y1", "x2", "y2", "detector_prob", "label", "confidence",
            *[f"p_{n}" for n in names], "status", "detail"]


def csv_cells(row: Row, names: Sequence[str]) -> list:
    box = row.box or [None] * 4
    probs = [None if row.probabilities is None else row.probabilities.get(n) for n in names]
    return [row.source, row.frame, row.time_s, row.face, *box, row.detector_prob, row.label, row.confidence,
            *probs, row.status, row.detail]


class CsvSink:
    """Rows streamed into a CSV file (written whole at the end: :func:`open_csv`) or stdout."""

    def __init__(self, stream: TextIO, names: Sequence[str]) -> None:
        self.names = list(names)
        self.writer = csv.writer(stream, lineterminator="\n")
        self.writer.writerow(csv_header(self.names))

    def write(self, row: Row) -> None:
        self.writer.writerow(["" if v is None else v for v in csv_cells(row, self.names)])


@contextlib.contextmanager
def open_csv(path: str, names: Sequence[str]) -> Iterator[CsvSink]:
    """A :class:`CsvSink` on ``path`` (``-``: stdout); the file appears only when the run ends."""
    from pipeline.core.atomic import atomic_path

    if path == "-":
        yield CsvSink(sys.stdout, names)
        return
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        yield CsvSink(f, names)


def text_line(row: Row) -> str:
    """The human-readable line of one row."""
    where = row.source if row.frame is None else f"{row.source} frame {row.frame}"
    if row.status == "unreadable":
        return f"{where}: unreadable ({row.detail})"
    if row.status == "no_face":
        return f"{where}: no face"
    probs = "  ".join(f"{n} {v:.3f}" for n, v in sorted(row.probabilities.items(), key=lambda kv: -kv[1]))
    return f"{where}: face {row.face} box {row.box}: {row.label} {row.confidence:.0%}  ({probs})"


def rows_json(rows: Sequence[Row]) -> str:
    buf = io.StringIO()
    json.dump([r.as_json() for r in rows], buf, indent=1)
    return buf.getvalue()
