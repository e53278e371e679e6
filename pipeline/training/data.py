"""From shards to tensors: which rows train, select and test a run, the class mapping, loaders.

Roles of the rows of ``data/processed/<dataset>/`` (read with the one shard loader,
``pipeline.data.ShardDataset``):

- a dataset with ``train``/``validation``/``test`` splits: those splits, in those roles;
- a k-fold dataset (every row carries ``fold``), run with fold ``f`` of ``k``: fold ``f`` is the
  test part, fold ``(f + 1) mod k`` the validation part used for model selection, the other
  ``k - 2`` folds train. (Documented choice: the papers select on the test fold or do not say;
  holding out a second subject-independent fold keeps the test fold unseen.)

Augmented rows (``parent_id`` set) only ever train. Classes: the unified labels present in the
dataset's rows, in unified order, become outputs ``0..K-1``; their names go in the checkpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from pipeline.labels import LABEL_NAMES


@dataclass
class Rows:
    """Encoded images (PNG bytes) and their unified labels, plus their ids for error messages."""

    images: list[bytes] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class SplitData:
    """The rows of one run by role, the class mapping and a fingerprint of the data."""

    train: Rows
    validation: Rows
    test: Rows
    label_ids: list[int]
    fingerprint: str
    fold: int = -1

    @property
    def label_names(self) -> list[str]:
        return [LABEL_NAMES[i] for i in self.label_ids]


def class_mapping(*parts: Rows) -> list[int]:
    """The unified labels present in ``parts``, sorted: output ``j`` of the network is ``label_ids[j]``."""
    return sorted({int(label) for rows in parts for label in rows.labels})


def data_fingerprint(*parts: Rows) -> str:
    """SHA-256 over every row's label and image bytes, part by part in row order: changes whenever
    the data does, and not when the same shards are read from another place (row ids name the
    shards' path, for messages only; run keys must not depend on where the project lives)."""
    h = hashlib.sha256()
    for rows in parts:
        h.update(b"\x00part")
        for img, label in zip(rows.images, rows.labels):
            h.update(str(label).encode())
            h.update(hashlib.sha256(img).digest())
    return h.hexdigest()[:16]


def decode_png(data: bytes, channels: int, what: str = "image") -> torch.Tensor:
    """PNG/JPEG bytes -> uint8 ``C×H×W`` tensor with 1 (grey) or 3 (RGB) channels (OpenCV decoder)."""
    import cv2
    import numpy as np

    if channels not in (1, 3):
        raise ValueError(f"input channels must be 1 or 3, got {channels}")
    buf = np.frombuffer(data or b"", np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise ValueError(f"{what}: cannot decode the image bytes")
    arr = img[None] if channels == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


class ImageDataset(torch.utils.data.Dataset):
    """``rows`` decoded once to uint8 tensors; items are ``(transform(image), class index)``."""

    def __init__(self, rows: Rows, label_ids: Sequence[int], channels: int,
                 transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        index = {label: j for j, label in enumerate(label_ids)}
        unknown = sorted({label for label in rows.labels if label not in index})
        if unknown:
            raise ValueError(f"labels {[LABEL_NAMES[u] for u in unknown]} are not among the model's classes "
                             f"{[LABEL_NAMES[i] for i in label_ids]}")
        self.images = [decode_png(b, channels, rid) for b, rid in zip(rows.images, rows.ids)]
        self.targets = torch.tensor([index[label] for label in rows.labels], dtype=torch.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.targets[i]


def make_loader(dataset: ImageDataset, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                num_workers: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader whose shuffling follows ``generator`` and whose workers are seeded from it."""
    from pipeline.training.recipe import worker_init

    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers,
        worker_init_fn=worker_init if num_workers else None, drop_last=False,
        persistent_workers=False)


def _rows_of(ds: Any, where: str) -> Rows:
    """The PNG bytes and unified labels of a ``ShardDataset`` selection."""
    from pipeline.labels import LABEL_INDEX

    unified = [LABEL_INDEX[name] for name in ds.classes]
    rows = Rows()
    for i in range(len(ds)):
        rows.images.append(ds.png(i))
        rows.labels.append(unified[ds.targets[i]])
        rows.ids.append(f"{where}#{i}")
    return rows


def fold_count(root: str | Path) -> int:
    """Number of k-fold folds of the shards under ``root`` (0: not a k-fold dataset)."""
    import pyarrow.parquet as pq

    from pipeline.shards import shard_files

    top = -1
    for path in shard_files(root):
        col = pq.read_table(path, columns=["fold"]).column(0)
        if len(col):
            top = max(top, int(col.to_numpy().max()))
    return top + 1


def load_split_data(root: str | Path, fold: int | None = None, *, validation_fold: bool = True,
                    derived_rows: bool = True) -> SplitData:
    """The rows of a run on the shards under ``root`` by role (see the module doc).

    ``fold`` is used for a k-fold dataset (default 0 there) and must be None otherwise. A
    dataset without validation shards gets an empty validation part (``fit`` then keeps the
    last epoch). ``validation_fold=False`` (k-fold only): no validation fold; the other
    ``k - 1`` folds all train and ``fit`` keeps the last epoch (a fixed schedule, no selection).
    ``derived_rows=False`` trains on the originals only, without the shards' offline-augmented
    copies (a recipe's ``derived_rows``).
    """
    from pipeline.data import ShardDataset
    from pipeline.labels import LABEL_INDEX
    from pipeline.shards import shard_files

    root = Path(root)
    k = fold_count(root)
    if k:
        f = 0 if fold is None else int(fold)
        if not 0 <= f < k:
            raise ValueError(f"{root}: fold {f} out of range 0..{k - 1}")
        if validation_fold and k < 3:
            raise ValueError(f"{root}: {k} folds leave none for validation (need k >= 3)")
        v = (f + 1) % k
        train = ShardDataset(root, fold=f, part="train", exclude_folds=[v] if validation_fold else [],
                             include_augmented=derived_rows, size=None)
        val = ShardDataset(root, fold=v, part="test", size=None) if validation_fold else None
        test = ShardDataset(root, fold=f, part="test", size=None)
        names = ("train", "validation", "test")
    else:
        if fold is not None:
            raise ValueError(f"{root}: --fold {fold} given, but the shards are not k-fold (fold is -1)")
        f = -1
        train = ShardDataset(root, split="train", include_augmented=derived_rows, size=None)
        test = ShardDataset(root, split="test", size=None)
        val = ShardDataset(root, split="validation", size=None) if shard_files(root, "validation") else None
        names = ("train", "validation", "test")
    parts = [_rows_of(ds, f"{root}:{n}") if ds is not None else Rows() for ds, n in zip((train, val, test), names)]
    label_ids = [LABEL_INDEX[name] for name in train.classes]
    return SplitData(*parts, label_ids=label_ids, fingerprint=data_fingerprint(*parts), fold=f)
