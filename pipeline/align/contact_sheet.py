"""A small contact sheet PNG of randomly chosen (seeded) aligned crops, for a look at the output."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def contact_sheet(crops_path: str | Path, n: int, tile: int, seed: int) -> bytes:
    """PNG bytes of a grid of ``n`` crops drawn with ``seed`` from crops.parquet, ``tile`` px each.

    Reads the file batch by batch and keeps only the chosen crops; an empty file gives a
    single blank tile (the stage still writes a sheet).
    """
    from PIL import Image

    pf = pq.ParquetFile(crops_path)
    total = pf.metadata.num_rows
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(total, size=min(n, total), replace=False).tolist()) if total else []
    wanted = set(chosen)
    tiles: dict[int, Image.Image] = {}
    offset = 0
    for batch in pf.iter_batches(batch_size=256, columns=["image"]):
        for j, data in enumerate(batch.column("image").to_pylist()):
            if offset + j in wanted:
                img = Image.open(io.BytesIO(data)).convert("RGB")
                tiles[offset + j] = img.resize((tile, tile), Image.Resampling.BILINEAR)
        offset += len(batch)
    cols = max(1, math.ceil(math.sqrt(len(chosen))))
    rows = max(1, math.ceil(len(chosen) / cols))
    sheet = Image.new("RGB", (cols * tile, rows * tile), (0, 0, 0))
    for k, index in enumerate(chosen):
        sheet.paste(tiles[index], ((k % cols) * tile, (k // cols) * tile))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
