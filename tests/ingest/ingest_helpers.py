"""Small hand-made native layouts for the reader and ingest tests (a few tiny images each)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from pipeline.core import params
from pipeline.ingest import ingest_dataset

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def pixels(seed: int, size: tuple[int, int] = (48, 48), channels: int = 1) -> np.ndarray:
    """A distinct random uint8 image per seed, (H, W) or (H, W, 3)."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if channels == 1 else (size[1], size[0], channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def write_image(path: Path, seed: int, size: tuple[int, int] = (48, 48), channels: int = 1,
                fmt: str | None = None) -> np.ndarray:
    """Write a distinct image to ``path`` (format from the suffix unless ``fmt``); return its pixels."""
    arr = pixels(seed, size, channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return arr


def write_truncated(path: Path, seed: int) -> None:
    """A PNG cut in half (decoding fails as truncated)."""
    write_image(path, seed, size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_empty(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def ingest(dataset: str, root: Path, out: Path, **overrides: Any) -> tuple[dict, Any, Any]:
    """Run ingest with the project params (+ overrides) in-process; return (summary, manifest, quarantine)."""
    cfg = params.section("ingest", dataset, path=PARAMS)
    cfg.update(overrides)
    summary = ingest_dataset(dataset, root, out, cfg, progress=False)
    return summary, pq.read_table(out / "manifest.parquet"), pq.read_table(out / "quarantine.parquet")


def reasons(quarantine) -> Counter:
    """Quarantine reason -> count."""
    return Counter(quarantine.column("reason").to_pylist())


def decoded(png: bytes) -> np.ndarray:
    """Pixels of a manifest PNG."""
    import io

    return np.asarray(Image.open(io.BytesIO(png)))


def check_accounting(summary: dict, manifest, quarantine, n_inputs: int) -> None:
    """read == kept + quarantined == n_inputs, and the summary agrees with the files."""
    assert summary["read"] == n_inputs
    assert summary["kept"] == manifest.num_rows
    assert summary["quarantined"] == quarantine.num_rows
    assert summary["read"] == summary["kept"] + summary["quarantined"]
    assert summary["per_reason"] == dict(sorted(reasons(quarantine).items()))
    assert sum(summary["per_class"].values()) == summary["kept"]


def write_png_bomb(path: Path, side: int = 20000) -> None:
    """A real decompression bomb: a valid 1-bit grey PNG of ``side`` x ``side`` black pixels whose
    all-zero rows compress ~1000:1 (20000x20000: a 49 KB file for 400 million pixels), written
    without ever holding the image (or its 50 MB of raw rows) in memory."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    block = row * 500
    idat = b"".join(z.compress(block) for _ in range(side // 500)) + z.compress(row * (side % 500)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, grey
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def write_flat_jpeg(path: Path, size: tuple[int, int], colour: int = 128, exif_orientation: int = 1) -> None:
    """A flat grey JPEG of ``size`` (width, height): cheap to make even at 8000x8000 (0.1 s, 64 MB once)."""
    img = Image.new("L", size, colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if exif_orientation != 1:
        exif[0x0112] = exif_orientation
    img.save(path, format="JPEG", exif=exif)
