"""RAF-DB basic: 15,339 in-the-wild photos with one of 7 basic expressions.

Layout (the ``basic/`` level may be omitted)::

    <root>/basic/EmoLabel/list_patition_label.txt    lines "train_00001.jpg 5" (codes: labels.py)
    <root>/basic/Image/aligned/train_00001_aligned.jpg   100x100 aligned faces
    <root>/basic/Image/original/train_00001.jpg          the photos

Parameter ``variant``: ``aligned`` (default — the crops the RAF-DB benchmarks use; the align stage
treats them as ``precropped``) or ``original`` (full photos for MTCNN). Only that folder is read.
image_id ``rafdb/train_00001``, source_split ``train``/``test`` from the name, subject null,
``extra`` ``{"variant": ...}``. A label line whose image is missing -> ``missing_image`` (source:
``<label file>#line=N``); an image with no label line -> ``unlabelled``; a line that is not
``<name> <code>`` -> ``malformed_line``; a name not ``train_NNNNN``/``test_NNNN`` -> ``bad_name``.
The label file is read as UTF-8 (a leading byte-order mark is dropped); one in UTF-16, or with a
byte that is not UTF-8, stops the run with an error naming the file and the line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from pipeline.core.labels import UnknownLabelError
from pipeline.ingest.readers.base import (
    Candidate, Quarantined, Reader, Scan, ScanItem, ignored_info, label_fields, list_files, read_text,
)

LABEL_FILE = "EmoLabel/list_patition_label.txt"
VARIANTS = {"aligned": "_aligned", "original": ""}
STEM_RE = re.compile(r"^(train|test)_\d+$")


class RafdbReader(Reader):
    """Reader of RAF-DB basic (see the module docstring)."""

    name = "rafdb"
    layouts = {"basic": f"<root>/basic/{LABEL_FILE} with <root>/basic/Image/aligned/*_aligned.jpg "
                        f"and/or <root>/basic/Image/original/*.jpg"}

    def _top(self, root: Path) -> Path:
        return root / "basic" if (root / "basic").is_dir() else root

    def detect_layout(self, root: Path) -> str:
        top = self._top(root)
        if not (top / LABEL_FILE).is_file():
            raise self.layout_error(root, f"{LABEL_FILE} not found (looked in {top})")
        return "basic"

    def scan(self, root: Path, cfg: dict[str, Any]) -> Scan:
        root = Path(root)
        layout = self.validate_root(root)
        variant = str(cfg.get("variant", "aligned"))
        if variant not in VARIANTS:
            raise ValueError(f"ingest.rafdb.variant: {variant!r} is not one of {', '.join(VARIANTS)}")
        top = self._top(root)
        image_dir = top / "Image" / variant
        if not image_dir.is_dir():
            raise self.layout_error(root, f"{image_dir} not found (ingest.rafdb.variant is {variant!r})")
        images, others = list_files(image_dir, root)
        info: dict[str, Any] = {"layout": layout, "variant": variant,
                                "label_file": (top / LABEL_FILE).relative_to(root).as_posix()}
        if others:
            info["ignored"] = ignored_info(others, "not image files")
        # read (and check) the label file now: an encoding error stops the run before any decoding
        lines = read_text(top / LABEL_FILE, str(top / LABEL_FILE)).splitlines()  # UTF-8, BOM dropped
        return Scan(layout, self._items(root, top, images, variant, lines), info)

    def _items(self, root: Path, top: Path, images: list[str], variant: str,
               lines: list[str]) -> Iterator[ScanItem]:
        suffix = VARIANTS[variant]
        label_rel = (top / LABEL_FILE).relative_to(root).as_posix()
        # image stem (train_00001) -> its file, for the images of the chosen variant
        by_stem: dict[str, str] = {}
        prefix = f"{(top / 'Image' / variant).relative_to(root).as_posix()}/"
        for rel in images:
            inner = rel[len(prefix):]
            stem = inner.rsplit(".", 1)[0]
            if suffix and stem.endswith(suffix):
                stem = stem[: -len(suffix)]
            if "/" in inner or not STEM_RE.match(stem):
                yield Quarantined(rel, "bad_name", f"{rel}: expected Image/{variant}/<train|test>_NNNNN{suffix}.jpg")
                continue
            if stem in by_stem:
                yield Quarantined(rel, "duplicate_id", f"{rel}: a second file for image {stem} ({by_stem[stem]})")
                continue
            by_stem[stem] = rel
        labelled: set[str] = set()
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{label_rel}#line={n}"
            fields = line.split()
            if len(fields) != 2:
                yield Quarantined(where, "malformed_line", f"{where}: {line!r} is not '<image name> <label>'")
                continue
            name, native = fields
            stem = name.rsplit(".", 1)[0]
            if stem in labelled:
                yield Quarantined(where, "duplicate_id", f"{where}: second label line for {name}")
                continue
            if stem not in by_stem:
                yield Quarantined(where, "missing_image",
                                  f"{where}: labelled image {name} has no file in Image/{variant}/")
                continue
            labelled.add(stem)
            rel = by_stem[stem]
            try:
                label, label_name = label_fields("rafdb", native)
            except UnknownLabelError as exc:
                yield Quarantined(rel, "unknown_label", f"{rel} ({where}): {exc}")
                continue
            yield Candidate(
                source=rel, image_id=f"rafdb/{stem}", label=label, label_name=label_name, native_label=native,
                subject=None, source_split=stem.split("_", 1)[0], path=root / rel, extra={"variant": variant},
            )
        for stem, rel in sorted(by_stem.items()):
            if stem not in labelled:
                yield Quarantined(rel, "unlabelled", f"{rel}: no line for {stem}.jpg in {label_rel}")
