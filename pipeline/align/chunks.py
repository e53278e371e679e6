"""Per-chunk work of the align stage: manifest rows in, one resumable part directory out.

A chunk is a contiguous range of manifest rows. :func:`align_rows` is the pure function
(chunk rows, settings) -> (crops table, outcomes table, counts). :func:`align_chunk` wraps it as
one Prefect task: it reads its rows from the manifest itself (so only small
:class:`ChunkSpec` s travel to Dask workers and the dataset is never held in memory), and writes
the results atomically into ``<parts>/<key>/`` where ``key`` hashes the chunk's rows, the
settings and the code version. A part records the sha256 of each of its files in ``part.json``
(:data:`PART`); a re-run reuses a part only when every file matches its record
(:func:`part_problem`), and :func:`read_part_file` checks the bytes again as merging reads them.
A corrupt, truncated or unrecorded part is recomputed, never merged; a run killed mid-chunk leaves
only a temporary directory that is never trusted.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.digest import file_sha256
from pipeline.core.atomic import atomic_path
from pipeline.align.settings import AlignSettings

#: bump when a code change alters crops or outcomes for the same inputs and settings
ALGORITHM_VERSION = "align-1"

#: manifest columns replaced by the crop's own in crops.parquet
_REPLACED = ("image", "width", "height", "channels")

OUTCOMES_SCHEMA = pa.schema([
    ("image_id", pa.string()),
    ("outcome", pa.string()),
    ("reason", pa.string()),
    ("prob", pa.float64()),
    ("box", pa.list_(pa.float32())),
    ("landmarks", pa.list_(pa.float32())),
    ("n_faces", pa.int32()),
])

CROPS = "crops.parquet"
OUTCOMES = "outcomes.parquet"
COUNTS = "counts.json"
#: a part's record: its key, its row count and the sha256 of each of :data:`PART_FILES`
PART = "part.json"
PART_FILES = (CROPS, OUTCOMES, COUNTS)


class CorruptPart(RuntimeError):
    """A part file does not match its record (the message names the file)."""


def crops_schema(manifest_schema: pa.Schema) -> pa.Schema:
    """crops.parquet: manifest columns (crop's image/width/height/channels in place) + ``outcome``."""
    fields = []
    for f in manifest_schema:
        if f.name == "image":
            fields.append(pa.field("image", pa.binary()))
        elif f.name in _REPLACED:
            fields.append(pa.field(f.name, pa.int32()))
        else:
            fields.append(f)
    return pa.schema(fields + [pa.field("outcome", pa.string())])


@dataclass(frozen=True)
class ChunkSpec:
    """Where one chunk's rows are and where its part goes; small and picklable.

    Attributes:
        manifest: path of ``manifest.parquet``.
        start, stop: the row range ``[start, stop)``.
        key: hash of the chunk's rows + settings + algorithm (the part directory's name).
        parts: directory holding the part directories.
    """

    manifest: str
    start: int
    stop: int
    key: str
    parts: str

    @property
    def part_dir(self) -> Path:
        return Path(self.parts) / self.key


def first_mismatch(folder: Path, expected: dict[str, str], record: str, what: str) -> str | None:
    """The first file of ``expected`` (name -> sha256) under ``folder`` that is unreadable or whose
    bytes differ from the record, as one line naming it (``what`` says what that may mean); ``None``
    when all match."""
    for name, digest in expected.items():
        path = folder / name
        try:
            actual = file_sha256(path)
        except OSError as exc:
            return f"{path}: unreadable ({exc.strerror or exc})"
        if actual != digest:
            return f"{path}: sha256 differs from {record} ({what})"
    return None


def _part_record(spec: ChunkSpec) -> dict[str, str]:
    """The sha256 of each part file, as recorded in ``part.json``; CorruptPart if it is not this chunk's record."""
    marker = spec.part_dir / PART
    try:
        record = json.loads(marker.read_text())
    except FileNotFoundError:
        raise CorruptPart(f"{marker}: missing (an incomplete part, or one written before parts were "
                          "recorded)") from None
    except (OSError, ValueError) as exc:
        raise CorruptPart(f"{marker}: unreadable ({exc})") from None
    files = record.get("sha256") if isinstance(record, dict) else None
    if (not isinstance(files, dict) or record.get("key") != spec.key or record.get("rows") != spec.stop - spec.start
            or sorted(files) != sorted(PART_FILES)):
        raise CorruptPart(f"{marker}: not the record of chunk {spec.key} (rows {spec.start}-{spec.stop})")
    return files


def part_problem(spec: ChunkSpec) -> str | None:
    """``None`` when ``spec.part_dir`` is complete and every file matches its recorded sha256, else
    why not (one line naming the file)."""
    try:
        files = _part_record(spec)
    except CorruptPart as exc:
        return str(exc)
    return first_mismatch(spec.part_dir, {name: files[name] for name in PART_FILES}, PART, "corrupt or truncated")


def read_part_file(spec: ChunkSpec, name: str) -> bytes:
    """The bytes of part file ``name``, checked against the part's record (:class:`CorruptPart` if not)."""
    expected = _part_record(spec)[name]
    path = spec.part_dir / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorruptPart(f"{path}: unreadable ({exc.strerror or exc})") from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise CorruptPart(f"{path}: sha256 differs from {PART} (corrupt or truncated)")
    return data


def read_part_table(spec: ChunkSpec, name: str) -> pa.Table:
    """A part's Parquet file, from bytes checked against the part's record."""
    return pq.read_table(pa.BufferReader(read_part_file(spec, name)))


def chunk_key(meta: pa.Table, settings: AlignSettings) -> str:
    """Hash of a chunk's manifest metadata (every column but ``image``: ``sha256`` stands for the
    pixels), the settings' fingerprint and the algorithm/library versions."""
    from importlib.metadata import version

    import cv2

    h = hashlib.sha256()
    h.update(json.dumps([ALGORITHM_VERSION, settings.fingerprint(), cv2.__version__,
                         version("facenet-pytorch"), version("torch")]).encode())
    h.update(json.dumps(meta.to_pylist(), sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def plan_chunks(manifest: Path, settings: AlignSettings, parts: Path) -> Iterator[ChunkSpec]:
    """The chunks of a manifest, ``settings.chunk_rows`` rows each, reading only metadata columns."""
    pf = pq.ParquetFile(manifest)
    columns = [n for n in pf.schema_arrow.names if n != "image"]
    start = 0
    for batch in pf.iter_batches(batch_size=settings.chunk_rows, columns=columns):
        meta = pa.Table.from_batches([batch])
        yield ChunkSpec(str(manifest), start, start + len(meta), chunk_key(meta, settings), str(parts))
        start += len(meta)


def read_rows(manifest: str | Path, start: int, stop: int) -> pa.Table:
    """Rows ``[start, stop)`` of a Parquet file, reading only the row groups that hold them."""
    pf = pq.ParquetFile(manifest)
    groups, offset, first = [], 0, None
    for g in range(pf.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if offset + n > start and offset < stop:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    if not groups:
        return pf.schema_arrow.empty_table()
    return pf.read_row_groups(groups).slice(start - first, stop - start)


def align_rows(rows: pa.Table, settings: AlignSettings) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """Align the images of some manifest rows: the pure work of a chunk.

    Returns:
        ``(crops, outcomes, counts)``: crops.parquet rows of the kept images, one outcomes row
        per input row, and ``counts[label_name][outcome]`` plus ``mtcnn_ran``/``faces_found``
        per label for the summary.
    """
    from pipeline.align.image_io import UndecodableImage, decode_rgb, encode_png
    from pipeline.align.policy import align_images

    images = []
    for data in rows.column("image").to_pylist():
        try:
            images.append(decode_rgb(data))
        except UndecodableImage:
            images.append(None)
    results = align_images(images, settings)
    del images

    columns = {n: rows.column(n).to_pylist() for n in rows.schema.names if n not in _REPLACED}
    keep = [i for i, (crop, _) in enumerate(results) if crop is not None]
    crop_cols: dict[str, list] = {n: [v[i] for i in keep] for n, v in columns.items()}
    crop_cols["image"] = [encode_png(results[i][0]) for i in keep]
    crop_cols["width"] = [results[i][0].shape[1] for i in keep]
    crop_cols["height"] = [results[i][0].shape[0] for i in keep]
    crop_cols["channels"] = [1 if results[i][0].ndim == 2 else results[i][0].shape[2] for i in keep]
    crop_cols["outcome"] = [results[i][1].outcome for i in keep]
    crops = pa.Table.from_pydict(crop_cols, schema=crops_schema(rows.schema))

    outs = [o for _, o in results]
    outcomes = pa.Table.from_pydict({
        "image_id": columns["image_id"],
        "outcome": [o.outcome for o in outs],
        "reason": [o.reason for o in outs],
        "prob": [o.prob for o in outs],
        "box": [o.box for o in outs],
        "landmarks": [o.landmarks for o in outs],
        "n_faces": [o.n_faces for o in outs],
    }, schema=OUTCOMES_SCHEMA)

    counts: dict[str, Counter] = {}
    for name, o in zip(columns.get("label_name", [None] * len(outs)), outs):
        c = counts.setdefault(str(name), Counter())
        c[o.outcome] += 1
        c[f"reason:{o.reason}"] += o.reason is not None
        c["mtcnn_ran"] += o.n_faces is not None
        c["faces_found"] += bool(o.n_faces)
    return crops, outcomes, {k: dict(sorted((n, v) for n, v in c.items() if v)) for k, c in counts.items()}


_THREADS_SET = threading.Lock()


def align_chunk(spec: ChunkSpec, settings: AlignSettings) -> dict[str, Any]:
    """One chunk as a Prefect task: reuse ``spec.part_dir`` when it verifies, else compute and (re)write it.

    Returns:
        ``{"key", "rows", "reused"}`` (the part directory holds the data).
    """
    if part_problem(spec) is None:
        return {"key": spec.key, "rows": spec.stop - spec.start, "reused": True}
    if settings.threads:
        import torch

        with _THREADS_SET:
            if torch.get_num_threads() != settings.threads:
                torch.set_num_threads(settings.threads)
    rows = read_rows(spec.manifest, spec.start, spec.stop)
    crops, outcomes, counts = align_rows(rows, settings)
    files = {CROPS: _parquet_bytes(crops), OUTCOMES: _parquet_bytes(outcomes),
             COUNTS: json.dumps(counts, sort_keys=True).encode()}
    record = {"key": spec.key, "rows": len(rows),
              "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    with atomic_path(spec.part_dir) as tmp:
        tmp.mkdir()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / PART).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return {"key": spec.key, "rows": len(rows), "reused": False}


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()
