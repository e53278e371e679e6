"""FER2013: 48x48 grey faces, as pixel strings in a CSV file or as one JPEG per face in class folders.

Native layouts (in the raw root; CSV columns are found by header name, never position):

* ``fer2013.csv`` — ``emotion,pixels,Usage`` (the original Kaggle/ICML release);
* ``icml_face_data.csv`` — ``emotion, Usage, pixels`` (same data, headers with leading spaces);
* ``train.csv`` (``emotion,pixels``, the Training rows) + ``test.csv`` (``pixels`` only: the
  PublicTest and PrivateTest rows, **without labels**);
* ``folders`` — the image-folder edition most users download today (Kaggle "FER-2013")::

      <root>/train/<class>/Training_3908.jpg
      <root>/test/<class>/PublicTest_12345.jpg  and  PrivateTest_67890.jpg

  class folders ``angry disgust fear happy neutral sad surprise``, in any case.

Which one is read: parameter ``file`` (``auto`` = the first present of ``fer2013.csv``,
``icml_face_data.csv``, ``train.csv``+``test.csv`` — torchvision's precedence — then ``folders``).
Files present but not read hold the same images again; summary.json lists them under ``ignored``.

CSV rows: image_id ``fer2013/row000123`` (1-based data row; ``fer2013/train/row000123`` and
``fer2013/test/row000123`` for the Kaggle pair, whose row numbers are their own), source
``fer2013.csv#row=123``, source_split = Usage (``Training`` for every train.csv row).
Folder images: image_id ``fer2013/<part>/<class>/<stem>`` (the relative path, so two class folders may
hold equal names), source the relative path, source_split the official Usage taken from the file-name
prefix (``Training_``, ``PublicTest_``, ``PrivateTest_``, any case); a file without one takes its
folder's name (``train`` or ``test``: map them in ``split.fer2013.source_map``; a ``test`` folder
without prefixes cannot tell PublicTest from PrivateTest, so nothing is guessed). ``extra.part`` is
the folder. Non-image files are listed under ``ignored``.

Quarantine reasons: ``malformed_row`` (missing fields, e.g. a truncated last line, or extra
fields), ``unknown_label`` (a code or class folder the scheme lacks), ``unknown_split``,
``wrong_pixel_count``, ``bad_pixels`` (decode step), ``bad_name`` (an image not directly in
``<part>/<class>/``), the decode step's image reasons (``unreadable_image``, ``empty_file``, ...),
``duplicate`` (writer), ``unlabelled`` (every test.csv row: the Kaggle test file has no
labels; kept rows must have one, so they are accounted for here — use fer2013.csv or
icml_face_data.csv to get labelled test rows).

Encoding: UTF-8 (a leading byte-order mark, as Excel writes, is dropped). A file in UTF-16, or
with a byte that is not UTF-8, stops the run with an error naming the file and the line.
"""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path
from typing import Any, Iterator

from pipeline.core.labels import NATIVE_TO_UNIFIED, UnknownLabelError
from pipeline.ingest.readers.base import (
    TEXT_ENCODING, Candidate, Quarantined, Reader, Scan, ScanItem, file_text_problem, ignored_info, label_fields,
    list_files, text_problem,
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
FOLDERS = "folders"
PARTS = ("train", "test")  # the image-folder edition's two top folders
CLASS_FOLDERS = tuple(NATIVE_TO_UNIFIED["fer2013_folders"])
USAGE_RE = re.compile(r"^(training|publictest|privatetest)_", re.IGNORECASE)
USAGE = {s.lower(): s for s in SPLITS}  # file-name prefix, lower-cased -> the official Usage


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
        FOLDERS: "<root>/train/<class>/Training_<n>.jpg and <root>/test/<class>/PublicTest_<n>.jpg, "
                 "class in " + " ".join(CLASS_FOLDERS),
    }

    def detect_layout(self, root: Path, choice: str = "auto") -> str:
        if choice != "auto":
            if choice not in (*FILES, FOLDERS):
                raise ValueError(f"ingest.fer2013.file: {choice!r} is not one of auto, {', '.join(FILES)}, {FOLDERS}")
            if choice == FOLDERS and not _parts(root):
                raise self.layout_error(root, "no train/ or test/ folder of class folders (chosen by "
                                              "ingest.fer2013.file: folders)")
            if choice != FOLDERS and not (root / choice).is_file():
                raise self.layout_error(root, f"{choice} (chosen by ingest.fer2013.file) not found")
            return choice
        for layout, files in FILES.items():
            if (root / files[0]).is_file():
                return layout
        if _parts(root):
            return FOLDERS
        raise self.layout_error(root, "none of fer2013.csv, icml_face_data.csv, train.csv, train/<class>/ "
                                      "or test/<class>/ found")

    def scan(self, root: Path, cfg: dict[str, Any]) -> Scan:
        root = Path(root)
        if not root.is_dir():
            self.validate_root(root)  # names the missing root
        layout = self.detect_layout(root, str(cfg.get("file", "auto")))
        if layout == FOLDERS:
            return self._scan_folders(root)
        used = [f for f in FILES[layout] if (root / f).is_file()]
        unused = [f for f in ALL_FILES if f not in used and (root / f).is_file()] + _parts(root)
        for f in used:  # fail at once on a wrong header, not half way through the stream
            self._columns(root / f, labelled=f != "test.csv")
        info = {"layout": layout, "files": used}
        if unused:
            info["ignored"] = {"count": len(unused), "why": f"same images as {', '.join(used)}",
                               "examples": unused}
        return Scan(layout, self._items(root, used), info)

    # image-folder edition ---------------------------------------------------------------------
    def _scan_folders(self, root: Path) -> Scan:
        parts = _parts(root)
        images, others = [], []
        for part in parts:
            found, other = list_files(root / part, root)
            images += found
            others += other
        csvs = [f for f in ALL_FILES if (root / f).is_file()]  # only when chosen by file: folders
        info: dict[str, Any] = {"layout": FOLDERS, "folders": parts}
        if others or csvs:
            info["ignored"] = ignored_info(csvs + others, "not image files" if not csvs else
                                           "not image files, or CSVs not chosen by ingest.fer2013.file")
        return Scan(FOLDERS, self._folder_items(root, images), info, total=len(images))

    def _folder_items(self, root: Path, images: list[str]) -> Iterator[ScanItem]:
        for rel in images:
            parts = rel.split("/")
            if len(parts) != 3:
                yield Quarantined(rel, "bad_name", f"{rel}: expected <train|test>/<class>/<name>.jpg, "
                                                   f"directly under a class folder")
                continue
            part, folder, fname = parts
            try:
                label, label_name = label_fields("fer2013_folders", folder.lower())
            except UnknownLabelError:
                yield Quarantined(rel, "unknown_label", f"{rel}: class folder {folder!r} is not one of "
                                                       f"{', '.join(CLASS_FOLDERS)} (any case)")
                continue
            usage = USAGE_RE.match(fname)
            split = USAGE[usage.group(1).lower()] if usage else part.lower()
            yield Candidate(
                source=rel, image_id=f"fer2013/{rel.rsplit('.', 1)[0]}", label=label, label_name=label_name,
                native_label=folder, subject=None, source_split=split, path=root / rel,
                extra={"part": part},
            )

    # CSV files -------------------------------------------------------------------------------
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


def _parts(root: Path) -> list[str]:
    """The image-folder edition's top folders under ``root`` (``train``, ``test``, any case) that hold
    at least one class folder."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and p.name.lower() in PARTS
                  and any(c.is_dir() and c.name.lower() in CLASS_FOLDERS for c in p.iterdir()))
