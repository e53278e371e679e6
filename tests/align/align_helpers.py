"""Helpers of the align tests: manifests following the contract, built from arrays."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.ingest.manifest import MANIFEST_SCHEMA


def png(img: np.ndarray) -> bytes:
    """Lossless PNG of a grey, RGB or RGBA uint8 array (given in RGB order)."""
    import cv2

    arr = img
    if img.ndim == 3 and img.shape[2] == 3:
        arr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        arr = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    return buf.tobytes()


def write_manifest(directory: Path, items: list[tuple[str, np.ndarray | bytes, str]], dataset: str = "test",
                   row_group_size: int = 4) -> Path:
    """``directory/manifest.parquet`` of ``(native id, image or raw bytes, label_name)`` items."""
    from pipeline.core.labels import LABEL_INDEX

    rows = []
    for native, img, label_name in items:
        data = img if isinstance(img, bytes) else png(img)
        shape = (0, 0, 0) if isinstance(img, bytes) else (img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2])
        rows.append({
            "image_id": f"{dataset}/{native}", "dataset": dataset, "label": LABEL_INDEX[label_name],
            "label_name": label_name, "native_label": label_name[:2].upper(), "subject": "S001",
            "source_split": None, "source": f"{native}.png", "width": shape[1], "height": shape[0],
            "channels": shape[2], "sha256": hashlib.sha256(data if isinstance(img, bytes) else img.tobytes()).hexdigest(),
            "image": data, "extra": "{}",
        })
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), directory / "manifest.parquet",
                   row_group_size=row_group_size)
    return directory
