"""The one writer of an ingest output: ``manifest.parquet``, ``quarantine.parquet``, ``summary.json``.

Contract: docs/architecture.md, "Manifest". The writer

* streams kept rows to Parquet in row groups (bounded memory: a row group is flushed after
  ``chunk_size`` rows or ``chunk_bytes`` of PNG data, never the whole dataset),
* does the accounting that needs the whole stream: a repeated ``image_id`` is quarantined as
  ``duplicate_id``; identical decoded pixels (same ``sha256``) as ``duplicate`` (first one kept),
* writes the three files into a temporary directory renamed over the output directory at the end
  (:func:`pipeline.core.atomic.atomic_path`), so a killed run leaves the old output or none,
* is deterministic: same results in the same order give byte-identical files (no timestamps).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.atomic import atomic_path
from pipeline.core.labels import LABEL_NAMES
from pipeline.ingest.readers.base import Quarantined, Record

MANIFEST_SCHEMA = pa.schema([
    ("image_id", pa.string()),
    ("dataset", pa.string()),
    ("label", pa.int64()),
    ("label_name", pa.string()),
    ("native_label", pa.string()),
    ("subject", pa.string()),
    ("source_split", pa.string()),
    ("source", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("channels", pa.int32()),
    ("sha256", pa.string()),
    ("image", pa.binary()),
    ("extra", pa.string()),
])

QUARANTINE_SCHEMA = pa.schema([
    ("source", pa.string()),
    ("dataset", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
])

MANIFEST = "manifest.parquet"
QUARANTINE = "quarantine.parquet"
SUMMARY = "summary.json"


class ManifestWriter:
    """Accounts for and writes one dataset's ingest results; use as a context manager.

    Args:
        out_dir: the output directory (replaced atomically on success).
        dataset: dataset name written into every row.
        chunk_size: kept rows per Parquet row group.
        chunk_bytes: flush a row group early once its PNG bytes exceed this.
        drop_duplicates: quarantine images whose decoded pixels equal an earlier kept image.
    """

    def __init__(self, out_dir: str | Path, dataset: str, chunk_size: int = 256,
                 chunk_bytes: int = 64 << 20, drop_duplicates: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.dataset = dataset
        self.chunk_size = int(chunk_size)
        self.chunk_bytes = int(chunk_bytes)
        self.drop_duplicates = bool(drop_duplicates)
        self.per_class: Counter[str] = Counter()
        self.per_reason: Counter[str] = Counter()
        self.per_split: Counter[str] = Counter()
        self.kept = 0
        self.duplicates_kept = 0
        self.downscaled = 0
        self._rows: list[dict[str, Any]] = []
        self._row_bytes = 0
        self._quarantine: list[dict[str, str]] = []
        self._ids: set[str] = set()
        self._first_by_sha: dict[str, tuple[str, str]] = {}
        self._atomic = None
        self._tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self.summary: dict[str, Any] | None = None

    # context management -------------------------------------------------------------------
    def __enter__(self) -> "ManifestWriter":
        self._atomic = atomic_path(self.out_dir)
        self._tmp = self._atomic.__enter__()
        self._tmp.mkdir()
        self._writer = pq.ParquetWriter(self._tmp / MANIFEST, MANIFEST_SCHEMA, compression="zstd")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        error = exc
        if error is None and self.summary is None:  # never publish a manifest without quarantine and summary
            error = RuntimeError(f"{self.out_dir}: ManifestWriter closed without finish(); nothing written")
        try:
            if error is None:
                self._flush()
        except Exception as flush_error:  # noqa: BLE001  (re-raised below, after the cleanup)
            error = flush_error
        finally:
            self._writer.close()
            self._writer = None
        if error is None:
            self._atomic.__exit__(None, None, None)  # rename the temporary directory over out_dir
            return
        self._atomic.__exit__(type(error), error, error.__traceback__)  # remove the temporary directory
        if error is not exc:
            raise error

    # accounting ---------------------------------------------------------------------------
    @property
    def quarantined(self) -> int:
        return len(self._quarantine)

    @property
    def read(self) -> int:
        return self.kept + self.quarantined

    def quarantine(self, q: Quarantined) -> None:
        """Record one input that is not kept."""
        self._quarantine.append({"source": q.source, "dataset": self.dataset, "reason": q.reason,
                                 "detail": q.detail})
        self.per_reason[q.reason] += 1

    def add(self, result: Record | Quarantined) -> None:
        """Account for one decoded result, in scan order."""
        if isinstance(result, Quarantined):
            self.quarantine(result)
            return
        c = result.candidate
        if c.image_id in self._ids:
            self.quarantine(Quarantined(c.source, "duplicate_id",
                                        f"{c.source}: image_id {c.image_id} was already given to an earlier file"))
            return
        first = self._first_by_sha.get(result.sha256)
        if first is not None and self.drop_duplicates:
            first_id, first_label = first
            same = "same label" if first_label == c.label_name else f"{first_label} there, {c.label_name} here"
            self.quarantine(Quarantined(c.source, "duplicate",
                                        f"{c.source}: same decoded pixels as kept image {first_id} ({same})"))
            return
        self.duplicates_kept += first is not None
        self._ids.add(c.image_id)
        self._first_by_sha.setdefault(result.sha256, (c.image_id, c.label_name))
        extra = c.extra
        if result.original_size is not None:  # stored downscaled (ingest.max_side): say so in the row
            extra = {**extra, "downscaled_from": list(result.original_size)}
            self.downscaled += 1
        self._rows.append({
            "image_id": c.image_id, "dataset": self.dataset, "label": c.label, "label_name": c.label_name,
            "native_label": c.native_label, "subject": c.subject, "source_split": c.source_split,
            "source": c.source, "width": result.width, "height": result.height, "channels": result.channels,
            "sha256": result.sha256, "image": result.png,
            "extra": json.dumps(extra, sort_keys=True, separators=(",", ":")),
        })
        self.kept += 1
        self.per_class[c.label_name] += 1
        if c.source_split is not None:
            self.per_split[c.source_split] += 1
        self._row_bytes += len(result.png)
        if len(self._rows) >= self.chunk_size or self._row_bytes >= self.chunk_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=MANIFEST_SCHEMA))
            self._rows, self._row_bytes = [], 0

    # final files --------------------------------------------------------------------------
    def finish(self, info: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write quarantine.parquet and summary.json (call inside the ``with`` block, last).

        Returns the summary: ``read``, ``kept``, ``quarantined``, ``per_class`` (unified label
        order), ``per_reason`` (sorted), ``per_source_split``, ``duplicates_kept`` (images equal to
        an earlier one, kept because ``drop_duplicates`` is off), ``downscaled`` (kept images stored
        downscaled to ``ingest.max_side``; only when there are any) and the reader's ``info``.
        """
        table = pa.Table.from_pylist(self._quarantine, schema=QUARANTINE_SCHEMA)
        pq.write_table(table, self._tmp / QUARANTINE, compression="zstd")
        summary = {
            "dataset": self.dataset,
            "read": self.read,
            "kept": self.kept,
            "quarantined": self.quarantined,
            "per_class": {name: self.per_class[name] for name in LABEL_NAMES if self.per_class[name]},
            "per_reason": dict(sorted(self.per_reason.items())),
            "per_source_split": dict(sorted(self.per_split.items())),
            "duplicates_kept": self.duplicates_kept,
            **({"downscaled": self.downscaled} if self.downscaled else {}),
            **(info or {}),
        }
        assert summary["read"] == summary["kept"] + summary["quarantined"]
        (self._tmp / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        self.summary = summary
        return summary
