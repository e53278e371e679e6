"""KDEF (Karolinska Directed Emotional Faces): 4900 colour photos, 70 people x 7 expressions x 5
angles x 2 sessions.

Layout: ``<root>/KDEF/AF01/AF01AFS.JPG`` (the ``KDEF/`` level may be omitted: ``<root>/AF01/...``).
A name is session A/B, sex F/M, id 01-35, expression AF AN DI HA NE SA SU, angle FL HL S HR FR;
the folder is the name's first four characters. Subject is sex + id (``F01``: the same person in
both sessions); ``extra`` holds ``session`` and ``angle``. image_id ``kdef/AF01AFS``.

Parameter ``angles`` (default all five: the project's KDEF paper, DFNet, trains and tests on
4,888 of the 4,900 images, every angle; ``[S]`` gives the frontal-only protocol common in FER
work): images of other angles are accounted for as ``angle_not_selected``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from pipeline.core.labels import UnknownLabelError
from pipeline.ingest.readers.base import (
    Candidate, Quarantined, Reader, Scan, ScanItem, ignored_info, label_fields, list_files,
)

ANGLES = ("FL", "HL", "S", "HR", "FR")
NAME_RE = re.compile(r"^([AB])([FM])(\d{2})([A-Z]{2})(FL|HL|S|HR|FR)\.jpe?g$", re.IGNORECASE)
FOLDER_RE = re.compile(r"^[AB][FM]\d{2}$", re.IGNORECASE)


class KdefReader(Reader):
    """Reader of KDEF (see the module docstring)."""

    name = "kdef"
    layouts = {"folders": "<root>/KDEF/AF01/AF01AFS.JPG (session A/B, sex F/M, id, expression, angle)"}

    def _top(self, root: Path) -> Path:
        return root / "KDEF" if (root / "KDEF").is_dir() else root

    def detect_layout(self, root: Path) -> str:
        top = self._top(root)
        if not any(p.is_dir() and FOLDER_RE.match(p.name) for p in top.iterdir()):
            raise self.layout_error(root, "no person folder like AF01 found (under KDEF/ or the root)")
        return "folders"

    def scan(self, root: Path, cfg: dict[str, Any]) -> Scan:
        root = Path(root)
        layout = self.validate_root(root)
        angles = [str(a).upper() for a in cfg.get("angles", ANGLES)]
        bad = [a for a in angles if a not in ANGLES]
        if bad or not angles:
            raise ValueError(f"ingest.kdef.angles: {angles} must be a non-empty subset of {', '.join(ANGLES)}")
        images, others = list_files(self._top(root), root)
        info: dict[str, Any] = {"layout": layout, "angles": angles}
        if others:
            info["ignored"] = ignored_info(others, "not image files")
        return Scan(layout, self._items(root, images, set(angles)), info, total=len(images))

    def _items(self, root: Path, images: list[str], angles: set[str]) -> Iterator[ScanItem]:
        for rel in images:
            parts = rel.split("/")
            fname, folder = parts[-1], (parts[-2] if len(parts) > 1 else "")
            m = NAME_RE.match(fname)
            if not m:
                yield Quarantined(rel, "bad_name", f"{rel}: file name is not <A|B><F|M><id><expression><angle>.JPG "
                                                   f"(e.g. AF01AFS.JPG)")
                continue
            session, sex, pid, code, angle = (g.upper() for g in m.groups())
            if folder.upper() != f"{session}{sex}{pid}":
                yield Quarantined(rel, "bad_name", f"{rel}: file of {session}{sex}{pid} in folder {folder!r}")
                continue
            try:
                label, label_name = label_fields("kdef", code)
            except UnknownLabelError as exc:
                yield Quarantined(rel, "unknown_label", f"{rel}: {exc}")
                continue
            if angle not in angles:
                yield Quarantined(rel, "angle_not_selected",
                                  f"{rel}: angle {angle} not in ingest.kdef.angles {sorted(angles)}")
                continue
            yield Candidate(
                source=rel, image_id=f"kdef/{fname.rsplit('.', 1)[0].upper()}", label=label,
                label_name=label_name, native_label=code, subject=f"{sex}{pid}", source_split=None,
                path=root / rel, extra={"session": session, "angle": angle},
            )
