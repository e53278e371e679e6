"""The one interface every dataset reader implements, and the records that flow through ingest.

A reader turns a dataset's native layout into a deterministic stream of :class:`Candidate`
(an image to decode, with its label and provenance) and :class:`Quarantined` (an input that is
accounted for but not kept, with a reason). Decoding candidates is a separate pure step
(:mod:`pipeline.ingest.readers.decode`) so it can run chunk by chunk, in parallel or as Prefect tasks,
while the order of the stream — and so the manifest's bytes — stays fixed.
"""

from __future__ import annotations

import abc
import codecs
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Union

from pipeline.core.labels import LABEL_NAMES, to_unified

# File suffixes treated as images. Any other file (README, .txt, landmarks) is not an image: it
# is listed under ``ignored`` in summary.json rather than quarantined.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})


#: how every text file of a dataset (CSV, label file) is read: UTF-8, a leading byte-order mark dropped
TEXT_ENCODING = "utf-8-sig"
# byte-order marks of encodings that are not UTF-8 (UTF-32 first: its LE mark starts with UTF-16's)
_FOREIGN_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                 (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


class LayoutError(FileNotFoundError):
    """The raw root is missing or is not laid out as the dataset's native layout."""


class TextFileError(ValueError):
    """A text file that is not UTF-8 text; the one-line message names the file and the line."""


@dataclass(frozen=True)
class Candidate:
    """An input image with everything but its pixels: label, provenance and where to read it.

    Exactly one of ``path`` (an image file) and ``pixels`` (a FER2013 pixel string of
    ``pixel_shape``) is set.
    """

    source: str
    image_id: str
    label: int
    label_name: str
    native_label: str
    subject: str | None
    source_split: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    pixels: str | None = None
    pixel_shape: tuple[int, int] | None = None


@dataclass(frozen=True)
class Quarantined:
    """An input that is not kept: ``reason`` is a short code, ``detail`` a sentence naming the file."""

    source: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Record:
    """A decoded, kept image: one manifest row (see docs/architecture.md, "Manifest").

    ``original_size`` is the (width, height) of an image downscaled to ``ingest.max_side``
    (recorded in the row's ``extra`` as ``downscaled_from``), None for one stored as it is.
    """

    candidate: Candidate
    width: int
    height: int
    channels: int
    sha256: str
    png: bytes
    original_size: tuple[int, int] | None = None


ScanItem = Union[Candidate, Quarantined]


@dataclass
class Scan:
    """What a reader found under a raw root.

    Attributes:
        layout: the detected layout (e.g. ``official`` or ``ck+48`` for CK+).
        items: candidates and quarantined inputs, in a deterministic order.
        info: facts for summary.json (files used, files ignored and why, selection parameters).
        total: the number of items when cheap to know (for the progress bar), else None.
    """

    layout: str
    items: Iterable[ScanItem]
    info: dict[str, Any] = field(default_factory=dict)
    total: int | None = None


class Reader(abc.ABC):
    """One dataset's native layout. Subclasses set ``name`` and ``layouts`` and implement the rest."""

    name: ClassVar[str]
    #: layout name -> human description of the expected tree (used in error messages and docs)
    layouts: ClassVar[dict[str, str]]

    def expected(self) -> str:
        """The expected layouts as one sentence, for error messages."""
        return " or ".join(f"{k}: {v}" for k, v in self.layouts.items())

    def layout_error(self, root: Path, problem: str) -> LayoutError:
        """A :class:`LayoutError` naming ``root``, the problem and the expected layout."""
        return LayoutError(f"{root}: {problem}; expected the {self.name} native layout ({self.expected()})")

    def validate_root(self, root: Path) -> str:
        """The layout found at ``root``; raises :class:`LayoutError` when it matches none."""
        root = Path(root)
        if not root.exists():
            raise self.layout_error(root, "raw root does not exist")
        if not root.is_dir():
            raise self.layout_error(root, "raw root is not a directory")
        return self.detect_layout(root)

    @abc.abstractmethod
    def detect_layout(self, root: Path) -> str:
        """The name of the layout at the existing directory ``root`` (raise :class:`LayoutError`)."""

    @abc.abstractmethod
    def scan(self, root: Path, cfg: dict[str, Any]) -> Scan:
        """Validate ``root`` and list its inputs as a :class:`Scan` (``cfg``: ``ingest`` params)."""


def list_files(top: Path, root: Path) -> tuple[list[str], list[str]]:
    """Image files and other files under ``top``, as sorted POSIX paths relative to ``root``.

    Hidden files and folders (``.DS_Store``, ``._x.png`` from macOS archives) are skipped.
    Sorting is by the relative path string, so the order is the same on every file system.
    """
    images: list[str] = []
    others: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):  # a linked folder counts as its content
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fn in filenames:
            if fn.startswith("."):
                continue
            rel = Path(dirpath, fn).relative_to(root).as_posix()
            (images if Path(fn).suffix.lower() in IMAGE_SUFFIXES else others).append(rel)
    return sorted(images), sorted(others)


def ignored_info(others: list[str], why: str, limit: int = 20) -> dict[str, Any]:
    """The summary entry for non-image files that were not read: count, reason and a few names."""
    return {"count": len(others), "why": why, "examples": others[:limit]}


def label_fields(scheme: str, native: str) -> tuple[int, str]:
    """(label index, label name) of a native code; raises ``UnknownLabelError``."""
    label = to_unified(scheme, native)
    return label, LABEL_NAMES[label]



def text_problem(lines: Iterable[bytes], name: str) -> TextFileError | None:
    """The first reason why ``lines`` (a text file's raw lines, e.g. a file opened ``"rb"``) are not
    UTF-8 text, as an error naming ``name`` and the 1-based line; None when they are.

    A UTF-8 byte-order mark is fine; a UTF-16/32 one, a byte that is not UTF-8 (latin-1 ``é``) or a
    NUL byte (UTF-16 without a byte-order mark, binary data) is not.
    """
    for n, raw in enumerate(lines, start=1):
        if n == 1:
            for bom, encoding in _FOREIGN_BOMS:
                if raw.startswith(bom):
                    return TextFileError(f"{name}: line 1: starts with a {encoding} byte-order mark; "
                                         f"expected UTF-8 text (save the file as UTF-8)")
            raw = raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw
        nul = raw.find(b"\x00")
        if nul >= 0:
            return TextFileError(f"{name}: line {n}: NUL byte at byte {nul + 1} "
                                 f"(UTF-16 text or binary data?); expected UTF-8 text")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return TextFileError(f"{name}: line {n}: byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} is not "
                                 f"UTF-8 ({exc.reason}; latin-1 or another legacy encoding?); expected UTF-8 text")
    return None


def file_text_problem(path: Path, name: str) -> TextFileError:
    """Why the file at ``path`` is not UTF-8 text (scanned line by line; call it once reading has failed)."""
    with open(path, "rb") as fh:
        return text_problem(fh, name) or TextFileError(f"{name}: not UTF-8 text; expected UTF-8 text")


def read_text(path: Path, name: str, max_bytes: int | None = None) -> str:
    """The text of a small UTF-8 file (a byte-order mark dropped); raises :class:`TextFileError`
    naming ``name`` and the line when it is not UTF-8 text (see :func:`text_problem`), or when the
    file is larger than ``max_bytes`` (not read then)."""
    if max_bytes is not None:
        size = Path(path).stat().st_size
        if size > max_bytes:
            raise TextFileError(f"{name}: {size:,} bytes, more than the {max_bytes:,} expected of this file; not read")
    data = Path(path).read_bytes()
    problem = text_problem(io.BytesIO(data), name)
    if problem is not None:
        raise problem
    return data.decode(TEXT_ENCODING)
