"""Build one dataset's shards from its aligned crops: plan, per-chunk work, bounded streaming.

1. :func:`plan` reads the crops' metadata (no pixels), assigns splits/folds
   (:mod:`pipeline.shard.splits`), balances the training part (:mod:`pipeline.shard.balance`) and decides how
   many derived rows each image gets (augmentation ``factor``).
2. :func:`iter_sorted_chunks` streams the crops in ``image_id`` order in chunks of
   ``shard.chunk_rows`` (an external bucket sort when the file is not already in that order), so
   memory stays bounded whatever the dataset size.
3. :func:`process_chunk` — a pure function of its inputs, fit to be a Prefect task — turns a chunk
   into shard rows per split: originals pass through unchanged (their PNG bytes), derived rows are
   decoded, augmented with per-row seeds and re-encoded as PNG.
4. :class:`pipeline.shards.format.ShardWriter` writes each split; :mod:`pipeline.shard.card` writes
   ``stats.json`` and ``README.md``. The whole output directory is swapped in atomically.

Output order is deterministic: per split, by parent ``image_id`` then copy index. Derived rows are
named ``<parent image_id>~<copy:04d>`` and carry the parent's split and fold.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.digest import file_sha256
from pipeline.shard import augment, balance, splits
from pipeline.core.labels import LABEL_NAMES
from pipeline.runner.flows import RunWindow, fixed_windows, in_process
from pipeline.shards.format import SPLITS, ShardWriter, rows_to_table

CROPS = "crops.parquet"
META_COLUMNS = ("image_id", "dataset", "label", "label_name", "subject", "source_split")
REQUIRED = ("image_id", "dataset", "label", "label_name", "image")


class ShardInputError(ValueError):
    """The aligned crops cannot be sharded (names the file and the problem)."""


@dataclass(frozen=True)
class Settings:
    """The merged ``split``, ``balance``, ``augment`` and ``shard`` params of one dataset."""

    split: dict[str, Any]
    balance: dict[str, Any]
    augment: dict[str, Any]
    shard: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"split": self.split, "balance": self.balance, "augment": self.augment, "shard": self.shard}


@dataclass(frozen=True)
class AugmentJob:
    """What :func:`process_chunk` needs to know about augmentation (picklable, small)."""

    preset: str | None
    spec: tuple[dict[str, Any], ...]
    seed: int
    png_compression: int = 6


@dataclass
class Plan:
    """Per input row: ``split``, ``fold``, ``uses`` (0 = dropped by balancing) and ``copies``."""

    rows: pd.DataFrame
    job: AugmentJob


def read_metadata(crops: Path) -> pd.DataFrame:
    """The crops' metadata columns (no pixels), validated against the contract."""
    if not crops.is_file():
        raise ShardInputError(f"{crops}: not found (run `fer-pipeline align` first)")
    try:
        names = set(pq.read_schema(crops).names)
    except Exception as exc:
        raise ShardInputError(f"{crops}: not a readable Parquet file: {exc}") from exc
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise ShardInputError(f"{crops}: missing columns {missing} (see docs/architecture.md, Aligned crops)")
    cols = [c for c in META_COLUMNS if c in names]
    meta = pq.read_table(crops, columns=cols).to_pandas()
    for c in META_COLUMNS:
        if c not in meta:
            meta[c] = None
    dup = meta["image_id"][meta["image_id"].duplicated()]
    if len(dup):
        raise ShardInputError(f"{crops}: duplicate image_id values, e.g. {list(dup[:3])}")
    if meta["image_id"].isna().any():
        raise ShardInputError(f"{crops}: {int(meta['image_id'].isna().sum())} rows without image_id")
    labels = pd.to_numeric(meta["label"], errors="coerce")
    bad = meta[labels.isna() | (labels < 0) | (labels >= len(LABEL_NAMES))]
    if len(bad):
        raise ShardInputError(f"{crops}: labels outside 0..{len(LABEL_NAMES) - 1}, e.g. {bad['image_id'].iloc[0]}")
    meta["label"] = labels.astype("int64")
    expected = meta["label"].map(lambda i: LABEL_NAMES[i])
    wrong = meta[expected != meta["label_name"]]
    if len(wrong):
        r = wrong.iloc[0]
        raise ShardInputError(f"{crops}: {r['image_id']} has label {r['label']} but label_name {r['label_name']!r}")
    return meta


def plan(meta: pd.DataFrame, settings: Settings, name: str) -> Plan:
    """Splits, balancing and derived-row counts of every input row."""
    rows = splits.assign_splits(meta, settings.split, name)
    rows["uses"] = balance.multiplicity(rows, settings.balance, name)
    factor = settings.augment.get("factor", 1)
    if not isinstance(factor, int) or factor < 1:
        raise augment.AugmentError(f"{name}: augment.factor must be an integer >= 1, got {factor!r}")
    spec = augment.preset_spec(settings.augment, name)
    if factor > 1 and not spec:
        raise augment.AugmentError(f"{name}: augment.factor={factor} needs an augment.preset (got none): "
                                   "the extra rows would be exact copies")
    train = (rows["split"] == "train").to_numpy()
    uses = rows["uses"].to_numpy()
    # a training row used m times yields m * factor rows: itself and m * factor - 1 derived ones
    rows["copies"] = np.where(train & (uses > 0), uses * factor - 1, 0).astype(np.int64)
    preset = settings.augment.get("preset") if spec else None
    job = AugmentJob(preset=preset, spec=tuple(spec), seed=int(settings.augment.get("seed", 0)),
                     png_compression=int(settings.shard.get("png_compression", 6)))
    return Plan(rows=rows, job=job)


def _decode(png: bytes) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ShardInputError("undecodable image bytes")
    if img.dtype != np.uint8:
        raise ShardInputError(f"image dtype {img.dtype}, expected 8-bit")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def _encode(img: np.ndarray, level: int) -> bytes:
    import cv2

    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:
        raise ShardInputError("PNG encoding failed")
    return buf.tobytes()


def process_chunk(chunk: list[dict[str, Any]], job: AugmentJob) -> dict[str, list[dict[str, Any]]]:
    """Shard rows per split for one chunk of input rows (pure: same inputs, same outputs).

    Args:
        chunk: input rows in output order, each with the crop's ``image`` (PNG bytes), metadata
            (``image_id``, ``label``, ``label_name``, ``dataset``, ``subject``) and the plan
            (``split``, ``fold``, ``uses``, ``copies``).
        job: the augmentation preset, seed and PNG level.

    Returns:
        ``{split: [row, ...]}`` with each kept original followed by its derived rows.
    """
    pipeline = augment.build_pipeline(job.spec) if job.spec else None
    out: dict[str, list[dict[str, Any]]] = {}
    for src in chunk:
        if src["uses"] == 0:
            continue
        base = {k: src.get(k) for k in ("label", "label_name", "dataset", "subject", "split", "fold")}
        rows = out.setdefault(src["split"], [])
        rows.append({**base, "image": src["image"], "image_id": src["image_id"], "parent_id": None,
                     "augmentation": None})
        if not src["copies"]:
            continue
        try:
            pixels = _decode(src["image"]) if pipeline is not None else None
        except ShardInputError as exc:
            raise ShardInputError(f"{src['image_id']}: {exc}") from None
        for copy in range(1, src["copies"] + 1):
            if pipeline is None:  # balancing copy without a preset: the same image
                png, seed, applied = src["image"], None, []
            else:
                seed = augment.copy_seed(job.seed, src["image_id"], copy)
                img, applied = augment.augment_image(pipeline, pixels, seed)
                png = _encode(img, job.png_compression)
            rows.append({**base, "image": png, "image_id": f"{src['image_id']}~{copy:04d}",
                         "parent_id": src["image_id"],
                         "augmentation": augment.augmentation_record(job.preset, seed, copy, applied)})
    return out


def iter_sorted_chunks(crops: Path, rows: pd.DataFrame, chunk_rows: int,
                       spill_dir: Path) -> Iterator[list[dict[str, Any]]]:
    """The crops joined with their plan, in ``image_id`` order, ``chunk_rows`` at a time.

    ``rows`` is the plan in the file's row order. A file already sorted by ``image_id`` is streamed
    as it is; otherwise rows are first spilled into buckets of ``chunk_rows`` consecutive ranks
    (one temporary Parquet file each) and every bucket is sorted on its own.
    """
    ids = rows["image_id"].to_numpy().astype(str)
    order = np.argsort(ids, kind="stable")
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    plan_cols = rows[["image_id", "label", "label_name", "dataset", "subject", "split", "fold", "uses", "copies"]]
    records = plan_cols.astype(object).where(plan_cols.notna(), None).to_dict("records")
    pf = pq.ParquetFile(crops)

    def joined(images: list[bytes], positions: np.ndarray) -> list[dict[str, Any]]:
        return [{**records[p], "image": img, "fold": int(records[p]["fold"]), "label": int(records[p]["label"]),
                 "uses": int(records[p]["uses"]), "copies": int(records[p]["copies"])}
                for img, p in zip(images, positions)]

    if np.all(np.diff(rank) > 0):
        start = 0
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=["image"]):
            n = batch.num_rows
            yield joined(batch.column(0).to_pylist(), np.arange(start, start + n))
            start += n
        return
    n_buckets = max(1, math.ceil(len(ids) / chunk_rows))
    spill_schema = pa.schema([("pos", pa.int64()), ("rank", pa.int64()), ("image", pa.binary())])
    paths = [spill_dir / f"bucket-{b:05d}.parquet" for b in range(n_buckets)]
    writers = [pq.ParquetWriter(p, spill_schema, compression="none") for p in paths]
    try:
        start = 0
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=["image"]):
            pos = np.arange(start, start + batch.num_rows)
            start += batch.num_rows
            bucket = rank[pos] // chunk_rows
            table = pa.table({"pos": pos, "rank": rank[pos], "image": batch.column(0)}, schema=spill_schema)
            for b in np.unique(bucket):
                writers[b].write_table(table.filter(pa.array(bucket == b)))
    finally:
        for w in writers:
            w.close()
    for p in paths:
        table = pq.read_table(p).sort_by("rank")
        p.unlink()
        yield joined(table.column("image").to_pylist(), table.column("pos").to_numpy())


def build(name: str, aligned: str | os.PathLike, out: str | os.PathLike, settings: Settings,
          run_window: RunWindow = in_process, progress: bool = False) -> dict[str, Any]:
    """Write the shards, ``stats.json`` and ``README.md`` of dataset ``name`` into ``out``.

    Args:
        name: the dataset (``fer2013``, ``ckplus``...).
        aligned: the align stage's output directory (holding ``crops.parquet``).
        out: the processed dataset directory; replaced atomically.
        settings: the merged params of the four sections.
        run_window: runs :func:`process_chunk` over one window of ``shard.window_chunks`` chunks,
            results in chunk order (:mod:`pipeline.runner.flows`: in this process, or as Prefect
            tasks); the output does not depend on it.
        progress: show a tqdm bar.

    Returns:
        The statistics written to ``stats.json``.
    """
    from pipeline.shard import card as dataset_card
    from pipeline.core.atomic import atomic_path

    crops = Path(aligned) / CROPS
    meta = read_metadata(crops)
    the_plan = plan(meta, settings, name)
    chunk_rows = int(settings.shard.get("chunk_rows", 512))
    work = partial(process_chunk, job=the_plan.job)
    window_chunks = int(settings.shard.get("window_chunks", 8))
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        writers = {s: ShardWriter(tmp, s, shard_bytes=int(float(settings.shard.get("shard_mb", 256)) * (1 << 20)),
                                  row_group_bytes=int(float(settings.shard.get("row_group_kb", 1024)) * 1024),
                                  compression_level=int(settings.shard.get("compression_level", 3)))
                   for s in SPLITS}
        counts: list[pd.DataFrame] = []
        try:
            with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=f".{tmp.name}.spill") as spill:
                chunks = iter_sorted_chunks(crops, the_plan.rows, chunk_rows, Path(spill))
                if progress:
                    from tqdm import tqdm

                    chunks = tqdm(chunks, total=math.ceil(len(meta) / chunk_rows), desc=f"shard {name}", unit="chunk")
                results = (r for window in fixed_windows(chunks, window_chunks) for r in run_window(work, window))
                for result in results:
                    for split_name, rows in result.items():
                        writers[split_name].write(rows_to_table(rows))
                        counts.append(pd.DataFrame({
                            "split": split_name, "label": [r["label"] for r in rows],
                            "fold": [r["fold"] for r in rows],
                            "derived": [r["parent_id"] is not None for r in rows]}))
            files = {s: [p.name for p in w.close()] for s, w in writers.items()}
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        written = pd.concat(counts, ignore_index=True) if counts else pd.DataFrame(
            columns=["split", "label", "fold", "derived"])
        stats = dataset_card.statistics(name, the_plan.rows, written, files, settings.as_dict(),
                                        input_sha256=file_sha256(crops))
        dataset_card.write(tmp, stats)
    return stats
