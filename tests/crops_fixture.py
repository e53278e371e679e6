"""Small ``crops.parquet`` files following the aligned-crops contract, with drawn faces.

Used by the shard, split and loader tests (and ``bench/``): every image is a procedurally drawn
face (head ellipse, eyes, a mouth whose curve depends on the label) plus seeded noise, so images
differ and decode like real crops.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.labels import LABEL_NAMES


def draw_face(label: int, index: int, size: int = 48, channels: int = 1) -> np.ndarray:
    """A uint8 face image (H x W or H x W x 3) whose mouth depends on ``label``."""
    import cv2

    rng = np.random.default_rng(index * 31 + label)
    img = np.full((size, size, 3), 40, np.uint8)
    c, s = size // 2, size / 48
    skin = tuple(int(v) for v in rng.integers(150, 230, 3))
    cv2.ellipse(img, (c, c), (int(17 * s), int(21 * s)), 0, 0, 360, skin, -1)
    for dx in (-7, 7):
        cv2.circle(img, (c + int(dx * s), c - int(5 * s)), max(1, int(2 * s)), (20, 20, 20), -1)
    curve = (label - 3.5) * 2.5 * s
    pts = np.array([[c - 8 * s, c + 9 * s], [c, c + 9 * s + curve], [c + 8 * s, c + 9 * s]], np.int32)
    cv2.polylines(img, [pts], False, (60, 20, 20), max(1, int(2 * s)))
    noise = rng.integers(-12, 13, img.shape)
    img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if channels == 1 else img


def png(img: np.ndarray) -> bytes:
    import cv2

    bgr = img if img.ndim == 2 else img[:, :, ::-1]
    ok, buf = cv2.imencode(".png", bgr)
    assert ok
    return buf.tobytes()


def make_crops(path: Path, dataset: str = "ckplus", *, subjects: int = 6, per_subject: int = 2,
               labels: tuple[int, ...] = (1, 3, 5, 7), source_splits: dict[str, float] | None = None,
               size: int = 48, channels: int = 1, shuffle_seed: int | None = None,
               counts: dict[int, int] | None = None) -> Path:
    """Write ``path/crops.parquet`` and return ``path``.

    Args:
        subjects: number of subjects (0: no subject column values, as FER2013/RAF-DB).
        per_subject: images per subject and label (or per label when ``subjects`` is 0).
        labels: unified label indices present.
        source_splits: ``{name: fraction}`` to fill ``source_split`` (e.g. FER2013 usage).
        shuffle_seed: write the rows in a shuffled order (not sorted by ``image_id``).
        counts: exact images per label (overrides ``per_subject``; subjects assigned round-robin).
    """
    rows = []
    i = 0
    for label in labels:
        n = counts[label] if counts else per_subject * max(1, subjects)
        for j in range(n):
            subject = f"S{(j % subjects) + 1:03d}" if subjects else None
            img = draw_face(label, i, size, channels)
            rows.append({"image_id": f"{dataset}/{LABEL_NAMES[label]}_{j:05d}", "dataset": dataset,
                         "label": label, "label_name": LABEL_NAMES[label], "native_label": str(label),
                         "subject": subject, "source_split": None, "source": f"x/{i}.png",
                         "sha256": hashlib.sha256(img.tobytes()).hexdigest(), "extra": json.dumps({}),
                         "image": png(img), "outcome": "precropped", "width": size, "height": size,
                         "channels": channels})
            i += 1
    if source_splits:
        names = list(source_splits)
        bounds = np.cumsum([source_splits[n] for n in names])
        rng = np.random.default_rng(1)
        for r in rows:
            r["source_split"] = names[int(np.searchsorted(bounds, rng.random(), side="right").clip(0, len(names) - 1))]
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(rows))
        rows = [rows[k] for k in order]
    schema = pa.schema([("image_id", pa.string()), ("dataset", pa.string()), ("label", pa.int64()),
                        ("label_name", pa.string()), ("native_label", pa.string()), ("subject", pa.string()),
                        ("source_split", pa.string()), ("source", pa.string()), ("sha256", pa.string()),
                        ("extra", pa.string()), ("image", pa.binary()), ("outcome", pa.string()),
                        ("width", pa.int32()), ("height", pa.int32()), ("channels", pa.int32())])
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path / "crops.parquet", row_group_size=64)
    return path
