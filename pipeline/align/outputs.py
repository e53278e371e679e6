"""The align stage's final outputs, merged from the part directories of its chunks.

``crops.parquet`` and ``outcomes.parquet`` are streamed part by part (one row group per chunk,
in manifest order) through a ``ParquetWriter``; ``summary.json`` adds up the parts' counts;
``contact_sheet.png`` shows a seeded random sample. Each file is written atomically, the
summary last: it carries the run's fingerprint, so a complete output is recognised and a re-run
with unchanged inputs and settings does no work.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import pyarrow.parquet as pq

from pipeline.core import atomic
from pipeline.align.chunks import COUNTS, CROPS, OUTCOMES, OUTCOMES_SCHEMA, ChunkSpec, crops_schema
from pipeline.align.contact_sheet import contact_sheet
from pipeline.align.policy import OUTCOMES as OUTCOME_NAMES
from pipeline.align.settings import AlignSettings

SUMMARY = "summary.json"
CONTACT_SHEET = "contact_sheet.png"


def run_fingerprint(specs: Sequence[ChunkSpec], settings: AlignSettings) -> str:
    """Hash of every chunk key and the contact-sheet settings: equal means identical outputs."""
    h = hashlib.sha256(json.dumps(settings.sheet, sort_keys=True).encode())
    for spec in specs:
        h.update(spec.key.encode())
    return h.hexdigest()


def is_complete(out: Path, fingerprint: str) -> bool:
    """Whether ``out`` already holds the complete outputs of this fingerprint."""
    try:
        summary = json.loads((out / SUMMARY).read_text())
    except (OSError, ValueError):
        return False
    files = (CROPS, OUTCOMES, CONTACT_SHEET)
    return summary.get("fingerprint") == fingerprint and all((out / f).is_file() for f in files)


def merge(manifest: Path, specs: Sequence[ChunkSpec], out: Path, dataset: str, settings: AlignSettings,
          fingerprint: str) -> dict[str, Any]:
    """Write the four outputs into ``out`` from the complete parts of ``specs``; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    schema = crops_schema(pq.read_schema(manifest))
    with atomic.atomic_path(out / CROPS) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            for spec in specs:
                writer.write_table(pq.read_table(spec.part_dir / CROPS).cast(schema))
    with atomic.atomic_path(out / OUTCOMES) as tmp:
        with pq.ParquetWriter(tmp, OUTCOMES_SCHEMA) as writer:
            for spec in specs:
                writer.write_table(pq.read_table(spec.part_dir / OUTCOMES))
    sheet = settings.sheet
    atomic.write_bytes(out / CONTACT_SHEET, contact_sheet(out / CROPS, sheet["n"], sheet["tile"], sheet["seed"]))
    summary = summarise(specs, dataset, settings, fingerprint)
    atomic.write_text(out / SUMMARY, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _rate(found: int, ran: int) -> float | None:
    return round(found / ran, 6) if ran else None


def summarise(specs: Sequence[ChunkSpec], dataset: str, settings: AlignSettings, fingerprint: str) -> dict[str, Any]:
    """summary.json: counts per outcome, reason and class, and MTCNN's detection rate.

    ``detection_rate`` is the share of images MTCNN ran on (detect policy, or ``verify``) in
    which it found a face; ``None`` when it ran on none (a pre-cropped dataset without verify).
    """
    per_class: dict[str, Counter] = {}
    for spec in specs:
        for name, c in json.loads((spec.part_dir / COUNTS).read_text()).items():
            per_class.setdefault(name, Counter()).update(c)
    total = Counter()
    for c in per_class.values():
        total.update(c)
    images = sum(total[o] for o in OUTCOME_NAMES)
    rows = sum(spec.stop - spec.start for spec in specs)
    if images != rows:
        raise RuntimeError(f"{dataset}: {rows} manifest rows but {images} outcomes (parts are inconsistent)")

    def block(c: Counter) -> dict[str, Any]:
        n = sum(c[o] for o in OUTCOME_NAMES)
        return {
            "images": n,
            **{o: c[o] for o in OUTCOME_NAMES},
            "detection_rate": _rate(c["faces_found"], c["mtcnn_ran"]),
            "kept_rate": _rate(n - c["quarantined"], n),
        }

    return {
        "dataset": dataset,
        **block(total),
        "mtcnn_ran": total["mtcnn_ran"],
        "faces_found": total["faces_found"],
        "per_outcome": {o: total[o] for o in OUTCOME_NAMES},
        "per_reason": {k.split(":", 1)[1]: v for k, v in sorted(total.items()) if k.startswith("reason:")},
        "per_class": {name: block(c) for name, c in sorted(per_class.items())},
        "settings": settings.to_dict(),
        "fingerprint": fingerprint,
    }
