"""JAFFE: 213 grey 256x256 TIFFs of 10 Japanese female subjects.

Layout: image files anywhere under the root (the distribution's ``jaffedbase/`` folder or the
files directly), named ``KA.AN1.39.tiff``: subject . expression code + repetition index . image
number. Codes AN DI FE HA NE SA SU (labels.py). image_id ``jaffe/KA.AN1.39``, subject ``KA``;
``extra`` holds ``index`` and ``number``. A name that does not parse -> ``bad_name``; an
expression code outside the list -> ``unknown_label``. Non-image files (README) are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from pipeline.core.labels import UnknownLabelError
from pipeline.ingest.readers.base import (
    Candidate, Quarantined, Reader, Scan, ScanItem, ignored_info, label_fields, list_files,
)

NAME_RE = re.compile(r"^([A-Z]{2})\.([A-Z]{2})(\d+)\.(\d+)\.tiff?$", re.IGNORECASE)


class JaffeReader(Reader):
    """Reader of JAFFE (see the module docstring)."""

    name = "jaffe"
    layouts = {"files": "<root>/[jaffedbase/]KA.AN1.39.tiff (subject.code+index.number.tiff)"}

    def detect_layout(self, root: Path) -> str:
        images, _ = list_files(root, root)
        if not images:
            raise self.layout_error(root, "no image files found")
        return "files"

    def scan(self, root: Path, cfg: dict[str, Any]) -> Scan:
        root = Path(root)
        layout = self.validate_root(root)
        images, others = list_files(root, root)
        info: dict[str, Any] = {"layout": layout}
        if others:
            info["ignored"] = ignored_info(others, "not image files")
        return Scan(layout, self._items(root, images), info, total=len(images))

    def _items(self, root: Path, images: list[str]) -> Iterator[ScanItem]:
        for rel in images:
            fname = rel.rsplit("/", 1)[-1]
            m = NAME_RE.match(fname)
            if not m:
                yield Quarantined(rel, "bad_name", f"{rel}: file name is not <subject>.<code><index>.<number>.tiff "
                                                   f"(e.g. KA.AN1.39.tiff)")
                continue
            subject, code, index, number = m.group(1).upper(), m.group(2).upper(), int(m.group(3)), int(m.group(4))
            try:
                label, label_name = label_fields("jaffe", code)
            except UnknownLabelError as exc:
                yield Quarantined(rel, "unknown_label", f"{rel}: {exc}")
                continue
            stem = fname.rsplit(".", 1)[0]
            yield Candidate(
                source=rel, image_id=f"jaffe/{stem}", label=label, label_name=label_name, native_label=code,
                subject=subject, source_split=None, path=root / rel, extra={"index": index, "number": number},
            )
