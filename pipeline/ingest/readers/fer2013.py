"""FER2013: 48x48 grey faces stored as pixel strings in a CSV file.

Native files (any one of them in the raw root; columns are found by header name, never position):

* ``fer2013.csv`` — ``emotion,pixels,Usage`` (the original Kaggle/ICML release);
* ``icml_face_data.csv`` — ``emotion, Usage, pixels`` (same data, headers with leading spaces);
* ``train.csv`` (``emotion,pixels``, the Training rows) + ``test.csv`` (``pixels`` only: the
  PublicTest and PrivateTest rows, **without labels**).

Which file is read: parameter ``file`` (``auto`` = the first present of ``fer2013.csv``,
``icml_face_data.csv``, ``train.csv``+``test.csv`` — torchvision's precedence). Files present but
not read hold the same images again; summary.json lists them under ``ignored``.

Rows: image_id ``fer2013/row000123`` (1-based data row; ``fer2013/train/row000123`` and
``fer2013/test/row000123`` for the Kaggle pair, whose row numbers are their own), source
``fer2013.csv#row=123``, source_split = Usage (``Training`` for every train.csv row).
Quarantine reasons: ``malformed_row`` (missing fields, e.g. a truncated last line, or extra
fields), ``unknown_label``, ``unknown_split``, ``wrong_pixel_count``, ``bad_pixels`` (decode
step), ``duplicate`` (writer), ``unlabelled`` (every test.csv row: the Kaggle test file has no
labels; kept rows must have one, so they are accounted for here — use fer2013.csv or
icml_face_data.csv to get labelled test rows).

Encoding: UTF-8 (a leading byte-order mark, as Excel writes, is dropped). A file in UTF-16, or
with a byte that is not UTF-8, stops the run with an error naming the file and the line.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any, Iterator

from pipeline.core.labels import UnknownLabelError
from pipeline.ingest.readers.base import (
    TEXT_ENCODING, Candidate, Quarantined, Reader, Scan, ScanItem, file_text_problem, label_fields, text_problem,
)

SPLITS = ("Training", "PublicTest", "PrivateTest")
SHAPE = (48, 48)
# layout name -> files read, in the order of precedence of ``file: auto``
FILES: dict[str, tuple[str, ...]] = {
    "fer2013.csv": ("fer2013.csv",),
    "icml_face_data.csv": ("icml_face_data.csv",),
    "train.csv": ("train.csv", "test.csv"),
}
ALL_FILES = ("fer2013.csv", "icml_face_data.csv", "train.csv", "test.csv")


def _headers(fieldnames: list[str] | None) -> dict[str, str]:
    """Normalised header name (stripped, lower case) -> header as written in the file."""
    return {name.strip().lower(): name for name in fieldnames or []}


def _shown(header: str) -> str:
    """A header name for a message: as written, or quoted with escapes when it holds invisible characters."""
    return header if header.isprintable() else repr(header)


class Fer2013Reader(Reader):
    """Reader of the FER2013 CSV files (see the module docstring)."""

    name = "fer2013"
    layouts = {
        "fer2013.csv": "<root>/fer2013.csv with columns emotion,pixels,Usage",
        "icml_face_data.csv": "<root>/icml_face_data.csv with columns emotion, Usage, pixels",
        "train.csv": "<root>/train.csv (emotion,pixels) and optionally <root>/test.csv (pixels)",
    }

    def detect_layout(self, root: Path, choice: str = "auto") -> str:
        if choice != "auto":
            if choice not in FILES:
                raise ValueError(f"ingest.fer2013.file: {choice!r} is not one of auto, {', '.join(FILES)}")
            if not (root / choice).is_file():
                raise self.layout_error(root, f"{choice} (chosen by ingest.fer2013.file) not found")
            return choice
        for layout, files in FILES.items():
            if (root / files[0]).is_file():
                return layout
        raise self.layout_error(root, "none of fer2013.csv, icml_face_data.csv, train.csv found")

    def scan(self, root: Path, cfg: dict[str, Any]) -> Scan:
        root = Path(root)
        self.validate_root(root)
        layout = self.detect_layout(root, str(cfg.get("file", "auto")))
        used = [f for f in FILES[layout] if (root / f).is_file()]
        unused = [f for f in ALL_FILES if f not in used and (root / f).is_file()]
        for f in used:  # fail at once on a wrong header, not half way through the stream
            self._columns(root / f, labelled=f != "test.csv")
        info = {"layout": layout, "files": used}
        if unused:
            info["ignored"] = {"count": len(unused), "why": f"same images as {', '.join(used)}",
                               "examples": unused}
        return Scan(layout, self._items(root, used), info)

    def _columns(self, path: Path, labelled: bool) -> dict[str, str | None]:
        """Header names of the pixels/emotion/Usage columns of ``path``; raises on a missing column
        or a header line that is not UTF-8 text (UTF-16, a legacy byte)."""
        with open(path, "rb") as fh:
            problem = text_problem(itertools.islice(fh, 1), str(path))
        if problem is not None:
            raise problem
        try:
            with open(path, newline="", encoding=TEXT_ENCODING) as fh:
                heads = _headers(next(csv.reader(fh), None))
        except UnicodeDecodeError:  # the first block read holds a later line that is not UTF-8
            raise file_text_problem(path, str(path)) from None
        needed = ("pixels", "emotion") if labelled else ("pixels",)
        missing = [n for n in needed if n not in heads]
        if missing:
            raise self.layout_error(path, f"CSV header lacks column(s) {', '.join(missing)} "
                                          f"(found: {', '.join(map(_shown, heads.values())) or 'nothing'})")
        return {"pixels": heads["pixels"], "emotion": heads.get("emotion"), "usage": heads.get("usage")}

    def _items(self, root: Path, files: list[str]) -> Iterator[ScanItem]:
        for fname in files:
            yield from self._rows(root / fname, fname, len(files) > 1)

    def _rows(self, path: Path, fname: str, kaggle_pair: bool) -> Iterator[ScanItem]:
        labelled = fname != "test.csv"
        cols = self._columns(path, labelled)
        id_prefix = f"fer2013/{Path(fname).stem}/" if kaggle_pair else "fer2013/"
        with open(path, newline="", encoding=TEXT_ENCODING) as fh:
            reader = csv.DictReader(fh)
            try:
                yield from self._records(reader, fname, cols, labelled, id_prefix)
            except UnicodeDecodeError:  # a byte that is not UTF-8: name its line (the decoder reads blocks)
                raise file_text_problem(path, str(path)) from None
            except csv.Error as exc:  # e.g. a NUL byte or a runaway quoted field: the rest is unreadable
                if "NUL" in str(exc):
                    raise file_text_problem(path, str(path)) from None
                raise ValueError(f"{path}: after line {reader.line_num}: not readable as CSV ({exc})") from None

    def _records(self, reader: csv.DictReader, fname: str, cols: dict[str, str | None], labelled: bool,
                 id_prefix: str) -> Iterator[ScanItem]:
        """One scan item per data row of ``reader`` (row numbers are 1-based data rows)."""
        for n, row in enumerate(reader, start=1):
            source = f"{fname}#row={n}"
            if None in row or any(v is None for v in row.values()):
                yield Quarantined(source, "malformed_row",
                                  f"{source}: {len(reader.fieldnames)} fields expected "
                                  f"(line {reader.line_num} has a different number)")
                continue
            if not labelled:
                yield Quarantined(source, "unlabelled",
                                  f"{source}: test.csv has no emotion column (labels are only in "
                                  f"fer2013.csv / icml_face_data.csv)")
                continue
            native = row[cols["emotion"]].strip()
            try:
                label, label_name = label_fields("fer2013", native)
            except UnknownLabelError as exc:
                yield Quarantined(source, "unknown_label", f"{source}: {exc}")
                continue
            if cols["usage"] is not None:
                split = row[cols["usage"]].strip()
                if split not in SPLITS:
                    yield Quarantined(source, "unknown_split",
                                      f"{source}: Usage {split!r} is not one of {', '.join(SPLITS)}")
                    continue
            else:
                split = "Training"  # Kaggle train.csv holds exactly the Training rows
            yield Candidate(
                source=source, image_id=f"{id_prefix}row{n:06d}", label=label, label_name=label_name,
                native_label=native, subject=None, source_split=split, extra={},
                pixels=row[cols["pixels"]], pixel_shape=SHAPE,
            )
