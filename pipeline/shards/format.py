"""The one writer (and lister) of Parquet shards: schema, Hugging Face metadata, file names.

Shards follow docs/architecture.md: HF-style names ``<split>-00000-of-00003.parquet`` so that
``datasets.load_dataset("parquet", data_dir=...)`` splits them, zstd compression, row groups of
about ``row_group_bytes`` (small, for random access by the loader) and files of about
``shard_bytes``. The schema metadata key ``huggingface`` declares ``image`` an ``Image`` feature and
``label`` a ``ClassLabel`` over :data:`pipeline.core.labels.LABEL_NAMES`, so ``datasets`` decodes the
images to PIL and knows the class names without depending on ``datasets`` here.

Writes are atomic: a shard is written under a temporary name and renamed to its final name only
when all shards of its split are complete (the count ``-of-N`` is known only then).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.labels import LABEL_NAMES

SPLITS: tuple[str, ...] = ("train", "validation", "test")
SHARD_RE = re.compile(r"^(?P<split>[a-z]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")

IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])

# column -> (arrow type, HF feature); order is the column order of every shard
COLUMNS: dict[str, tuple[pa.DataType, dict[str, Any]]] = {
    "image": (IMAGE_TYPE, {"_type": "Image"}),
    "label": (pa.int64(), {"names": list(LABEL_NAMES), "_type": "ClassLabel"}),
    "label_name": (pa.string(), {"dtype": "string", "_type": "Value"}),
    "dataset": (pa.string(), {"dtype": "string", "_type": "Value"}),
    "subject": (pa.string(), {"dtype": "string", "_type": "Value"}),
    "split": (pa.string(), {"dtype": "string", "_type": "Value"}),
    "fold": (pa.int32(), {"dtype": "int32", "_type": "Value"}),
    "image_id": (pa.string(), {"dtype": "string", "_type": "Value"}),
    "parent_id": (pa.string(), {"dtype": "string", "_type": "Value"}),
    "augmentation": (pa.string(), {"dtype": "string", "_type": "Value"}),
}


def hf_features() -> dict[str, Any]:
    """The ``datasets`` ``Features.to_dict()`` of the shard columns."""
    return {name: feature for name, (_, feature) in COLUMNS.items()}


def schema() -> pa.Schema:
    """The Arrow schema of every shard, with the ``huggingface`` metadata."""
    meta = {b"huggingface": json.dumps({"info": {"features": hf_features()}}).encode("utf-8")}
    return pa.schema([pa.field(name, typ) for name, (typ, _) in COLUMNS.items()], metadata=meta)


def shard_name(split: str, index: int, count: int) -> str:
    """``train-00000-of-00002.parquet``."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def shard_files(root: str | os.PathLike, split: str | None = None) -> list[Path]:
    """The complete shard files under ``root`` (of ``split``, or all), sorted by split then index.

    Raises:
        FileNotFoundError: ``root`` is missing, or a split's shards are incomplete (a file of
            ``-of-N`` missing).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no shard directory")
    found: dict[str, dict[int, tuple[int, Path]]] = {}
    for path in root.iterdir():
        m = SHARD_RE.match(path.name)
        if m and (split is None or m["split"] == split):
            found.setdefault(m["split"], {})[int(m["index"])] = (int(m["count"]), path)
    out: list[Path] = []
    for name in sorted(found, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s)):
        files = found[name]
        counts = {c for c, _ in files.values()}
        if len(counts) != 1 or set(files) != set(range(counts.pop())):
            raise FileNotFoundError(f"{root}: shards of split {name!r} are incomplete: {sorted(p.name for _, p in files.values())}")
        out.extend(files[i][1] for i in sorted(files))
    return out


class ShardWriter:
    """Streams rows of one split into rolling shard files in a directory.

    Rows arrive as Arrow tables of :func:`schema` (in their final order); they are buffered into
    row groups of about ``row_group_bytes`` and files of about ``shard_bytes``. :meth:`close`
    renames the temporary files to ``<split>-i-of-N.parquet`` and returns the final paths.
    """

    def __init__(self, out_dir: str | os.PathLike, split: str, *, shard_bytes: int = 256 << 20,
                 row_group_bytes: int = 1 << 20, compression_level: int = 3):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.out_dir = Path(out_dir)
        self.split = split
        self.shard_bytes = int(shard_bytes)
        self.row_group_bytes = int(row_group_bytes)
        self.compression_level = int(compression_level)
        self.rows = 0
        self._schema = schema()
        self._buffer: list[pa.Table] = []
        self._buffer_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._file_bytes = 0
        self._tmp_paths: list[Path] = []

    def write(self, table: pa.Table) -> None:
        """Append rows (a table of the shard schema); flushes full row groups."""
        if table.num_rows == 0:
            return
        table = table.select(list(COLUMNS)).cast(self._schema)
        self.rows += table.num_rows
        self._buffer.append(table)
        self._buffer_bytes += table.nbytes
        if self._buffer_bytes >= self.row_group_bytes:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer)
        self._buffer, self._buffer_bytes = [], 0
        # cut into row groups of about row_group_bytes (deterministic: depends on the rows only)
        per_row = max(1, table.nbytes // max(1, table.num_rows))
        group_rows = max(1, self.row_group_bytes // per_row)
        start = 0
        while start < table.num_rows:
            remaining = table.num_rows - start
            if not final and remaining < group_rows:
                self._buffer, self._buffer_bytes = [table.slice(start)], table.slice(start).nbytes
                return
            part = table.slice(start, min(group_rows, remaining))
            self._write_group(part)
            start += part.num_rows

    def _write_group(self, part: pa.Table) -> None:
        if self._writer is None:
            tmp = self.out_dir / f".{self.split}-{len(self._tmp_paths):05d}.parquet.tmp"
            self._tmp_paths.append(tmp)
            self._writer = pq.ParquetWriter(tmp, self._schema, compression="zstd",
                                            compression_level=self.compression_level,
                                            write_statistics=["split", "fold", "label", "image_id"],
                                            use_dictionary=["label_name", "dataset", "subject", "split"])
            self._file_bytes = 0
        self._writer.write_table(part, row_group_size=part.num_rows)
        self._file_bytes += part.nbytes
        if self._file_bytes >= self.shard_bytes:
            self._writer.close()
            self._writer = None

    def close(self) -> list[Path]:
        """Flush, close and give the shards their final names; the final paths (maybe none)."""
        self._flush(final=True)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        count = len(self._tmp_paths)
        final = []
        for i, tmp in enumerate(self._tmp_paths):
            path = self.out_dir / shard_name(self.split, i, count)
            os.replace(tmp, path)
            final.append(path)
        return final

    def abort(self) -> None:
        """Close and delete what was written (after an error)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for tmp in self._tmp_paths:
            tmp.unlink(missing_ok=True)


def rows_to_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """A shard-schema table of row dicts (``image`` given as PNG ``bytes``)."""
    rows = list(rows)
    data = {name: [r.get(name) for r in rows] for name in COLUMNS}
    data["image"] = [{"bytes": b, "path": None} for b in data["image"]]
    return pa.Table.from_pydict(data, schema=schema())
