"""From shards to tensors: which rows train, select and test a run, the class mapping, loaders.

Roles of the rows of ``data/processed/<dataset>/`` (selected and decoded by the one shard dataset,
:class:`pipeline.shards.dataset.ShardDataset`):

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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from pipeline.core.labels import LABEL_INDEX, LABEL_NAMES
from pipeline.shards.dataset import ShardDataset


@dataclass
class SplitData:
    """The rows of one run by role (selections of the one shard dataset,
    :class:`~pipeline.shards.dataset.ShardDataset`), the class mapping and a fingerprint of the data.

    ``validation`` may be empty (no such part). :func:`with_transform` gives the datasets the
    training loop and the scoring read: the same rows through a recipe's transform.
    """

    train: ShardDataset
    validation: ShardDataset
    test: ShardDataset
    label_ids: list[int]
    fingerprint: str
    fold: int = -1

    @property
    def label_names(self) -> list[str]:
        return [LABEL_NAMES[i] for i in self.label_ids]


def data_fingerprint(*parts: ShardDataset) -> str:
    """SHA-256 over every row's unified label and image bytes, part by part in row order: changes
    whenever the data does, and not when the same shards are read from another place (run keys
    must not depend on where the project lives)."""
    h = hashlib.sha256()
    for ds in parts:
        h.update(b"\x00part")
        for i in range(len(ds)):
            h.update(str(ds.unified_label(i)).encode())
            h.update(hashlib.sha256(ds.png(i)).digest())
    return h.hexdigest()[:16]


def with_transform(ds: ShardDataset, channels: int, transform: Callable[[torch.Tensor], torch.Tensor],
                   classes: list[str] | None = None) -> ShardDataset:
    """``ds`` decoded with ``channels`` and fed through ``transform`` (a recipe's train or eval
    transform), labelled in the order of ``classes`` when given (a checkpoint's outputs); decoded
    images stay in memory, so epochs after the first skip decoding."""
    return ds.view(transform=transform, channels=channels, cache_decoded=True, classes=classes)


def make_loader(dataset, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                num_workers: int = 0, device: str | torch.device | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader whose shuffling follows ``generator`` and whose workers are seeded from it; when
    its batches go to a CUDA ``device``, they come in pinned (page-locked) memory, which the copy to
    the GPU can overlap with computing (pinning changes no value, and nothing on the CPU)."""
    from pipeline.training.recipe import worker_init

    pin = device is not None and torch.device(device).type == "cuda"
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers,
        worker_init_fn=worker_init if num_workers else None, drop_last=False,
        persistent_workers=False, pin_memory=pin)


def fold_count(root: str | Path) -> int:
    """Number of k-fold folds of the shards under ``root`` (0: not a k-fold dataset)."""
    import pyarrow.parquet as pq

    from pipeline.shards.format import shard_files

    top = -1
    for path in shard_files(root):
        col = pq.read_table(path, columns=["fold"]).column(0)
        if len(col):
            top = max(top, int(col.to_numpy().max()))
    return top + 1


def validation_fold_of(fold: int, k: int, validation_fold: bool = True) -> int | None:
    """The fold that selects the model of a run tested on ``fold`` of ``k``: the next one, ``(fold + 1)
    mod k`` (None without ``validation_fold``: the other ``k - 1`` folds all train). The one rule of
    fold roles, which :func:`load_split_data` and cross-validation's independence check share."""
    return (fold + 1) % k if validation_fold else None


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
    from pipeline.shards.format import shard_files

    root = Path(root)
    k = fold_count(root)
    if k:
        f = 0 if fold is None else int(fold)
        if not 0 <= f < k:
            raise ValueError(f"{root}: fold {f} out of range 0..{k - 1}")
        if validation_fold and k < 3:
            raise ValueError(f"{root}: {k} folds leave none for validation (need k >= 3)")
        v = validation_fold_of(f, k, validation_fold)
        train = ShardDataset(root, fold=f, part="train", exclude_folds=[] if v is None else [v],
                             include_augmented=derived_rows, size=None)
        classes = train.classes
        val = None if v is None else ShardDataset(root, fold=v, part="test", size=None, classes=classes)
        test = ShardDataset(root, fold=f, part="test", size=None, classes=classes)
    else:
        if fold is not None:
            raise ValueError(f"{root}: --fold {fold} given, but the shards are not k-fold (fold is -1)")
        f = -1
        train = ShardDataset(root, split="train", include_augmented=derived_rows, size=None)
        classes = train.classes
        test = (ShardDataset(root, split="test", size=None, classes=classes)
                if shard_files(root, "test") else None)
        val = (ShardDataset(root, split="validation", size=None, classes=classes)
               if shard_files(root, "validation") else None)
    val = train.subset([]) if val is None else val  # no validation part: an empty one
    test = train.subset([]) if test is None else test  # no test part (FER2013 without PrivateTest): an empty one
    check_roles(train, val, test, root)
    label_ids = [LABEL_INDEX[name] for name in classes]
    return SplitData(train, val, test, label_ids=label_ids, fingerprint=data_fingerprint(train, val, test), fold=f)


class RoleError(ValueError):
    """A row that would both make a choice (train or select a model) and be tested."""


def check_roles(train: ShardDataset, validation: ShardDataset, test: ShardDataset, root: str | Path) -> None:
    """Refuse a run whose test rows also train or select: every choice of training (the epoch kept,
    the plateau of the learning rate, the distillation rounds' stop) reads the training and
    validation parts only, so a test row there (e.g. a FER2013 PrivateTest row) would leak into the
    choices. The shards' split and fold columns make this impossible by construction; this check keeps
    it so, whatever a hand-made or future shard directory holds."""
    tested = set(test.image_ids)
    for role, part in (("validation", validation), ("train", train)):
        leaked = tested.intersection(part.image_ids)
        if leaked:
            raise RoleError(f"{root}: {len(leaked)} test row(s) also in the {role} part, e.g. "
                            f"{sorted(leaked)[0]} (the split must keep test rows out of every choice)")
