"""The align stage's final outputs, merged from the part directories of its chunks.

``crops.parquet`` and ``outcomes.parquet`` are streamed part by part (one row group per chunk,
in manifest order) through a ``ParquetWriter``; ``summary.json`` adds up the parts' counts;
``contact_sheet.png`` shows a seeded random sample. Each file is written atomically, the
summary last. Part files are read through :func:`pipeline.align.chunks.read_part_table`, which
checks them against their part's record, so a corrupt part is never merged. After the four
outputs, the merge writes a record of their sha256 and the run's fingerprint (``output.json`` in
the parts directory, outside the DVC-tracked output so the outputs' bytes stay what they were): a
re-run with unchanged inputs and settings does no work only when every output file still matches
it (:func:`output_problem`); otherwise the outputs are merged again.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import pyarrow.parquet as pq

from pipeline.core import atomic
from pipeline.core.digest import file_sha256
from pipeline.align.chunks import (COUNTS, CROPS, OUTCOMES, OUTCOMES_SCHEMA, ChunkSpec, crops_schema, first_mismatch,
                                   read_part_file, read_part_table)
from pipeline.align.contact_sheet import contact_sheet
from pipeline.align.policy import OUTCOMES as OUTCOME_NAMES
from pipeline.align.settings import AlignSettings

SUMMARY = "summary.json"
CONTACT_SHEET = "contact_sheet.png"
OUTPUT_FILES = (CROPS, OUTCOMES, CONTACT_SHEET, SUMMARY)
#: the record of the last merge (fingerprint, sha256 of each of :data:`OUTPUT_FILES`), kept in the parts directory
OUTPUT_RECORD = "output.json"


def run_fingerprint(specs: Sequence[ChunkSpec], settings: AlignSettings) -> str:
    """Hash of every chunk key and the contact-sheet settings: equal means identical outputs."""
    h = hashlib.sha256(json.dumps(settings.sheet, sort_keys=True).encode())
    for spec in specs:
        h.update(spec.key.encode())
    return h.hexdigest()


def output_problem(out: Path, record: Path, fingerprint: str) -> str | None:
    """``None`` when ``out`` holds the outputs ``record`` lists for this fingerprint, byte for byte;
    else why not (one line naming the file)."""
    try:
        recorded = json.loads(record.read_text())
    except FileNotFoundError:
        return f"{record}: missing (no verified output)"
    except (OSError, ValueError) as exc:
        return f"{record}: unreadable ({exc})"
    files = recorded.get("sha256") if isinstance(recorded, dict) else None
    if not isinstance(files, dict) or sorted(files) != sorted(OUTPUT_FILES):
        return f"{record}: not an output record"
    if recorded.get("fingerprint") != fingerprint:
        return f"{record}: recorded for other inputs or settings"
    return first_mismatch(out, {name: files[name] for name in OUTPUT_FILES}, record.name,
                          "corrupt, truncated or edited")


def is_complete(out: Path, record: Path, fingerprint: str) -> bool:
    """Whether ``out`` already holds the verified outputs of this fingerprint."""
    return output_problem(out, record, fingerprint) is None


def merge(manifest: Path, specs: Sequence[ChunkSpec], out: Path, dataset: str, settings: AlignSettings,
          fingerprint: str, record: Path | None = None) -> dict[str, Any]:
    """Write the four outputs into ``out`` from the verified parts of ``specs``; return the summary.

    Raises :class:`pipeline.align.chunks.CorruptPart` (naming the file) when a part does not match its
    record. With ``record``, the outputs' sha256 and ``fingerprint`` are written there last.
    """
    if record is not None:
        record.unlink(missing_ok=True)  # outputs being replaced are unverified until the new record
    out.mkdir(parents=True, exist_ok=True)
    schema = crops_schema(pq.read_schema(manifest))
    digests = {}
    with atomic.atomic_path(out / CROPS) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            for spec in specs:
                writer.write_table(read_part_table(spec, CROPS).cast(schema))
        digests[CROPS] = file_sha256(tmp)
    with atomic.atomic_path(out / OUTCOMES) as tmp:
        with pq.ParquetWriter(tmp, OUTCOMES_SCHEMA) as writer:
            for spec in specs:
                writer.write_table(read_part_table(spec, OUTCOMES))
        digests[OUTCOMES] = file_sha256(tmp)
    sheet = settings.sheet
    png = contact_sheet(out / CROPS, sheet["n"], sheet["tile"], sheet["seed"])
    atomic.write_bytes(out / CONTACT_SHEET, png)
    summary = summarise(specs, dataset, settings, fingerprint)
    text = (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode()
    atomic.write_bytes(out / SUMMARY, text)
    if record is not None:
        digests.update({CONTACT_SHEET: hashlib.sha256(png).hexdigest(), SUMMARY: hashlib.sha256(text).hexdigest()})
        atomic.write_text(record, json.dumps({"fingerprint": fingerprint, "sha256": dict(sorted(digests.items()))},
                                             indent=1) + "\n")
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
        for name, c in json.loads(read_part_file(spec, COUNTS)).items():
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
