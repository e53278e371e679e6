"""The one PyTorch loader over processed shards: :class:`ShardDataset`.

Selection:

* ``ShardDataset(root, split="train")`` — the training rows (originals and derived rows);
  ``split="validation"`` / ``"test"`` — originals only (derived rows are for training only).
* ``ShardDataset(root, fold=3, part="train")`` — a k-fold dataset's training part of fold 3: rows
  whose ``fold`` is not 3, including derived rows of those; ``part="test"`` — the originals of fold 3.

Samples are ``(image, label)``. ``image``: the stored PNG decoded to a uint8 ``C x H x W`` tensor
(``channels`` 1 or 3, resized to ``size`` unless ``None``) and then, as torchvision datasets do,
passed to ``transform`` (e.g. a recipe's torchvision v2 transforms:
:func:`pipeline.training.transforms.train_transform`) whose output is the sample; without a
``transform``, a float tensor in [0, 1], normalised by ``mean``/``std`` when given. ``label``: the
contiguous index into :attr:`ShardDataset.classes` (the unified labels present in the whole shard
directory, so train and test agree; or the ``classes`` given, e.g. from a checkpoint), or
:data:`UNLABELLED` in a view made with ``unlabelled=True`` (another dataset's faces in a
distillation's transfer set: only the teacher labels them). :class:`ConcatShards` chains such
selections into one training set.

This is the one reader of shards for PyTorch: training, distillation, evaluation, cross-validation,
tests and benches all select and decode rows through it (:meth:`ShardDataset.view` gives the same
rows with another ``transform`` or ``channels``, :meth:`ShardDataset.subset` fewer rows). A
``transform`` with a ``batch`` method (:class:`pipeline.training.transforms.BatchableCompose`)
transforms a DataLoader's whole batch at once (``__getitems__``), with the per-sample result.

Files are opened lazily in each worker and the dataset pickles without open handles or caches, so
it works with ``DataLoader(num_workers>0)``. The PNG bytes of the selection are held in memory when
they fit in ``cache_mb`` (one read per file), otherwise row groups are read on demand (a small LRU);
``cache_decoded`` also keeps the decoded, resized uint8 arrays (per process; by default when they
fit in ``cache_mb``).
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pyarrow.parquet as pq

from pipeline.core.labels import LABEL_INDEX, LABEL_NAMES
from pipeline.shards.format import shard_files

try:  # the base classes only; torch is imported lazily elsewhere
    from torch.utils import data as torch_data
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover - torch is a dependency
    torch_data, _TorchDataset = None, object

INDEX_COLUMNS = ["label", "fold", "image_id", "parent_id"]
UNLABELLED = -100  # the label of a row without one: torch's cross-entropy ignore_index


def decode_image(data: bytes, channels: int) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 ``H×W`` (``channels`` 1) or ``H×W×3`` RGB (3) with OpenCV's decoder:
    the one decoding of a stored face, shared by training, evaluation and ``predict``."""
    import cv2

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    buf = np.frombuffer(data or b"", np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise ValueError("cannot decode the image bytes")
    return img if channels == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _check_transform(transform: Any) -> None:
    """A clear error for an albumentations transform, which ShardDataset took before it decoded to tensors."""
    if transform is not None and type(transform).__module__.split(".")[0] == "albumentations":
        raise TypeError("ShardDataset transform: a callable on the uint8 C x H x W tensor (torchvision v2), not "
                        "an albumentations transform; wrap one as lambda x: torch.from_numpy(aug(image=x.permute(1, "
                        "2, 0).numpy())['image']).permute(2, 0, 1)")


def labels_present(root: str | os.PathLike) -> list[int]:
    """The unified label indices that occur in the shards under ``root``, ascending."""
    present: set[int] = set()
    for path in shard_files(root):
        present.update(pq.read_table(path, columns=["label"]).column(0).unique().to_pylist())
    return sorted(present)


def contiguous_labels(labels: Iterable[int | str]) -> tuple[list[str], dict[int, int]]:
    """Class names and the map unified index -> ``0..K-1`` for the labels given (indices or names)."""
    unified = sorted({LABEL_INDEX[x] if isinstance(x, str) else int(x) for x in labels})
    return [LABEL_NAMES[u] for u in unified], {u: i for i, u in enumerate(unified)}


class ShardDataset(_TorchDataset):
    """A map-style PyTorch dataset over the shards of one processed dataset.

    Args:
        root: the processed dataset directory (``data/processed/<dataset>``).
        split: ``train``, ``validation`` or ``test`` (when ``fold`` is not given).
        fold: a k-fold dataset's fold; selects by ``fold`` column instead of by split.
        part: with ``fold``: ``train`` (other folds, with derived rows) or ``test`` (originals of
            ``fold``).
        exclude_folds: with ``fold`` and ``part="train"``: folds left out of the training part as
            well (e.g. the fold a k-fold run holds out for model selection), derived rows included.
        include_augmented: keep derived rows in a training selection (default True); evaluation
            selections never include them.
        channels: 1 (grey) or 3 (RGB).
        size: output size, an int (square) or ``(height, width)``; ``None`` keeps the stored size.
        transform: a callable on the uint8 ``C×H×W`` tensor whose result is the sample (online
            augmentation and normalisation, torchvision v2 style); ``None``: scale to [0, 1].
        mean, std: without ``transform``: per-channel normalisation after scaling to [0, 1].
        classes: class names fixing the label order (default: labels present under ``root``).
        cache_mb: hold the selection's PNG bytes in memory when they total at most this.
        cache_decoded: also keep decoded, resized uint8 arrays in memory, per process (epochs after
            the first skip decoding; with workers use ``persistent_workers=True``). ``"auto"``: when
            they total at most ``cache_mb`` (needs ``size``).
    """

    def __init__(self, root: str | os.PathLike, split: str | None = "train", *, fold: int | None = None,
                 part: str = "train", exclude_folds: Sequence[int] = (), include_augmented: bool = True,
                 channels: int = 1,
                 size: int | Sequence[int] | None = 48, transform: Callable[..., Any] | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 classes: Sequence[str] | None = None, cache_mb: float = 512,
                 cache_decoded: bool | str = "auto"):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        _check_transform(transform)
        self.root = Path(root)
        self.channels = channels
        self.size = None if size is None else ((int(size), int(size)) if isinstance(size, int) else tuple(size))
        self.transform = transform
        self.mean = None if mean is None else np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = None if std is None else np.asarray(std, np.float32).reshape(-1, 1, 1)
        names, self.unified_to_index = contiguous_labels(classes if classes is not None else labels_present(root))
        self.classes: list[str] = names
        self._unified = [LABEL_INDEX[n] for n in names]

        if fold is None:
            if split not in ("train", "validation", "test"):
                raise ValueError(f"split must be train, validation or test, got {split!r}")
            files = shard_files(root, split)
            evaluation = split != "train"
        else:
            if part not in ("train", "test"):
                raise ValueError(f"part must be train or test, got {part!r}")
            files = shard_files(root)
            evaluation = part == "test"
        if not files:
            raise FileNotFoundError(f"{root}: no shards for split={split!r} fold={fold!r}")
        self.files = [str(p) for p in files]

        file_idx, row_idx, labels, group_of, rg_starts, ids = [], [], [], [], [], []
        for f, path in enumerate(self.files):
            pfile = pq.ParquetFile(path)
            t = pfile.read(columns=INDEX_COLUMNS)
            lab = t.column("label").to_numpy()
            keep = np.ones(len(lab), bool)
            folds = t.column("fold").to_numpy()
            derived = t.column("parent_id").is_valid().to_numpy(zero_copy_only=False)
            if fold is not None:
                if not (folds >= 0).any():
                    raise ValueError(f"{path}: no k-fold rows (fold is -1), but fold={fold} was asked for")
                keep &= (folds == fold) if part == "test" else ((folds != fold) & (folds >= 0))
                keep &= ~np.isin(folds, list(exclude_folds))
            if evaluation or not include_augmented:
                keep &= ~derived
            unknown = set(lab[keep].tolist()) - set(self.unified_to_index)
            if unknown:
                raise ValueError(f"{path}: labels {sorted(LABEL_NAMES[u] for u in unknown)} not in classes {names}")
            rows = np.flatnonzero(keep)
            sizes = [pfile.metadata.row_group(g).num_rows for g in range(pfile.metadata.num_row_groups)]
            starts = np.concatenate([[0], np.cumsum(sizes)])
            rg_starts.append(starts)
            file_idx.append(np.full(len(rows), f, np.int32))
            row_idx.append(rows.astype(np.int64))
            labels.append(lab[rows])
            ids.extend(t.column("image_id").take(rows).to_pylist())
            group_of.append(np.searchsorted(starts, rows, side="right") - 1)
        self._file = np.concatenate(file_idx)
        self._row = np.concatenate(row_idx)
        self._group = np.concatenate(group_of).astype(np.int32)
        self._rg_starts = rg_starts
        unified = np.concatenate(labels)
        self.targets: list[int] = [self.unified_to_index[int(u)] for u in unified]
        self.image_ids: list[str] = ids  # per sample, e.g. to report predictions per image
        self.cache_mb = cache_mb
        if cache_decoded == "auto":
            decoded = len(self._row) * self.size[0] * self.size[1] * channels if self.size else None
            cache_decoded = decoded is not None and decoded <= cache_mb * (1 << 20)
        self.cache_decoded = bool(cache_decoded)
        self._reset_state()

    def view(self, *, transform: Callable[..., Any] | None = None, channels: int | None = None,
             cache_decoded: bool | None = None, classes: Sequence[str] | None = None,
             unlabelled: bool = False) -> "ShardDataset":
        """The same rows with another ``transform`` (and ``channels``, decoded cache, or ``classes``:
        e.g. a checkpoint's, whose output order the labels then follow; a row of another class is
        an error). ``unlabelled``: every row's label becomes :data:`UNLABELLED` (its own class is
        not among the ones a model of other data predicts, or must not be used).

        A view shares this dataset's open files, PNG bytes and decoded images (keyed by channels):
        the train and evaluation transforms of the same rows, or the rounds of a distillation,
        read and decode each image once."""
        _check_transform(transform)
        out = self._clone()
        out.transform = transform
        if classes is not None and list(classes) != self.classes:
            names, out.unified_to_index = contiguous_labels(classes)
            unknown = sorted({LABEL_NAMES[u] for u in map(self.unified_label, range(len(self)))} - set(names))
            if unknown:
                raise ValueError(f"{self.root}: labels {unknown} are not among the classes {names}")
            out.targets = [out.unified_to_index[self.unified_label(i)] for i in range(len(self))]
            out.classes, out._unified = names, [LABEL_INDEX[n] for n in names]
        if unlabelled:
            out.targets = [UNLABELLED] * len(self)
        if channels is not None:
            if channels not in (1, 3):
                raise ValueError(f"channels must be 1 or 3, got {channels}")
            out.channels = channels
        if cache_decoded is not None:
            out.cache_decoded = bool(cache_decoded)
        return out

    def _clone(self) -> "ShardDataset":
        """A shallow copy that keeps the per-process state (copy.copy would pickle it away)."""
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        return out

    def subset(self, indices: Sequence[int]) -> "ShardDataset":
        """The samples ``indices`` (in that order) as a dataset of their own, classes unchanged."""
        idx = np.asarray(indices, dtype=np.int64)
        out = self._clone()
        out._file, out._row, out._group = self._file[idx], self._row[idx], self._group[idx]
        out.targets = [self.targets[int(i)] for i in idx]
        out.image_ids = [self.image_ids[int(i)] for i in idx]
        out._reset_state()
        return out

    def unified_label(self, i: int) -> int:
        """The unified label index of sample ``i`` (:data:`pipeline.core.labels.LABEL_NAMES`), or
        :data:`UNLABELLED`."""
        t = self.targets[int(i)]
        return t if t == UNLABELLED else self._unified[t]

    # --- per-process state (never pickled) -------------------------------------------------
    def _reset_state(self) -> None:
        self._pfiles: dict[int, pq.ParquetFile] = {}
        self._pid = os.getpid()  # the process that opened _pfiles
        self._png: list[bytes] | None = None
        self._fits: bool | None = None  # whether the selection fits in cache_mb (decided on first use)
        self._groups: OrderedDict[tuple[int, int], list[bytes]] = OrderedDict()
        self._decoded: dict[tuple[int, int], np.ndarray] = {}  # (channels, sample) -> image, shared by views

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_pfiles", "_pid", "_png", "_fits", "_groups", "_decoded"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_state()

    def __len__(self) -> int:
        return len(self._row)

    def _pfile(self, f: int) -> pq.ParquetFile:
        if f not in self._pfiles:
            self._pfiles[f] = pq.ParquetFile(self.files[f])
        return self._pfiles[f]

    def _selection_bytes(self) -> int:
        return sum(self._pfile(f).metadata.row_group(g).total_byte_size
                   for f in range(len(self.files)) for g in range(self._pfile(f).metadata.num_row_groups))

    def _load_all(self) -> list[bytes]:
        """The PNG bytes of every selected row, one read of the image column per file."""
        out: list[bytes] = [b""] * len(self)
        for f in range(len(self.files)):
            mine = np.flatnonzero(self._file == f)
            if not len(mine):
                continue
            col = self._pfile(f).read(columns=["image"]).column(0).combine_chunks().field("bytes")
            for i, b in zip(mine, col.take(self._row[mine]).to_pylist()):
                out[i] = b
        return out

    def png(self, i: int) -> bytes:
        """The stored PNG bytes of sample ``i``."""
        if self._pid != os.getpid():  # a forked worker: never share the parent's open files
            self._pfiles, self._groups, self._pid = {}, OrderedDict(), os.getpid()
        if self._fits is None:
            self._fits = self._selection_bytes() <= self.cache_mb * (1 << 20)
            if self._fits:
                self._png = self._load_all()
        if self._png is not None:
            return self._png[i]
        f, g = int(self._file[i]), int(self._group[i])
        key = (f, g)
        if key not in self._groups:
            col = self._pfile(f).read_row_group(g, columns=["image"]).column(0).combine_chunks()
            self._groups[key] = col.field("bytes").to_pylist()
            if len(self._groups) > 4:
                self._groups.popitem(last=False)
        self._groups.move_to_end(key)
        return self._groups[key][int(self._row[i] - self._rg_starts[f][g])]

    def image(self, i: int) -> np.ndarray:
        """Sample ``i`` decoded as uint8 (H x W grey or H x W x 3 RGB), resized to ``size``."""
        key = (self.channels, i)
        if key in self._decoded:
            return self._decoded[key]
        import cv2

        try:
            img = decode_image(self.png(i), self.channels)
        except ValueError:
            raise ValueError(f"{self.files[self._file[i]]}: row {self._row[i]} does not decode as an image") from None
        if self.size is not None and img.shape[:2] != self.size:
            h, w = self.size
            shrink = h < img.shape[0] or w < img.shape[1]
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if self.cache_decoded:
            self._decoded[key] = img
        return img

    def _tensor(self, i: int):
        import torch

        img = self.image(int(i))
        arr = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(arr))

    def __getitems__(self, indices: Sequence[int]) -> list:
        """The samples ``indices`` (what a DataLoader asks for one batch). A ``transform`` with a
        ``batch`` method (:class:`pipeline.training.transforms.BatchableCompose`) transforms them all
        at once, with the same result as one by one; otherwise each goes through :meth:`__getitem__`."""
        batch = getattr(self.transform, "batch", None)
        if batch is None or not len(indices):
            return [self[i] for i in indices]
        x = batch([self._tensor(i) for i in indices])
        return list(zip(x.unbind(0), (self.targets[int(i)] for i in indices)))

    def __getitem__(self, i: int):
        import torch

        x = self._tensor(i)
        if self.transform is not None:
            return self.transform(x), self.targets[int(i)]
        x = x.float().div_(255.0)
        if self.mean is not None:
            x.sub_(torch.from_numpy(self.mean))
        if self.std is not None:
            x.div_(torch.from_numpy(self.std))
        return x, self.targets[int(i)]


class ConcatShards(torch_data.ConcatDataset if torch_data is not None else object):
    """Selections of shards (:class:`ShardDataset`) read as one training set, e.g. a fold's labelled
    rows followed by a transfer set's unlabelled ones. Unlike torch's ``ConcatDataset`` it keeps
    each part's batched transform (``__getitems__``) and has :meth:`view`, as the parts do."""

    def view(self, **kwargs: Any) -> "ConcatShards":
        """Every part through :meth:`ShardDataset.view` with ``kwargs``."""
        return ConcatShards([part.view(**kwargs) for part in self.datasets])

    @property
    def targets(self) -> list[int]:
        return [t for part in self.datasets for t in part.targets]

    def __getitems__(self, indices: Sequence[int]) -> list:
        """The samples ``indices``, each part's asked for in one batch, back in the order asked."""
        by_part: dict[int, list[tuple[int, int]]] = {}
        for pos, i in enumerate(indices):
            p = bisect.bisect_right(self.cumulative_sizes, int(i))
            start = self.cumulative_sizes[p - 1] if p else 0
            by_part.setdefault(p, []).append((pos, int(i) - start))
        out: list = [None] * len(indices)
        for p, items in by_part.items():
            for (pos, _), sample in zip(items, self.datasets[p].__getitems__([j for _, j in items])):
                out[pos] = sample
        return out
