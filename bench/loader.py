"""Throughput of :class:`pipeline.shards.dataset.ShardDataset` against torchvision ``ImageFolder``.

The same images are written twice: as shards by the shard stage's writer (via a generated
``crops.parquet``) and as one PNG file per image in class folders. Both are read through a
``DataLoader`` (shuffled, batch 64, same worker count) into float tensors of the model's input:

* 48x48 grey (FER2013 / CK+ models): ImageFolder with ``Grayscale(1), Resize(48), ToTensor()``;
* 224x224 colour (DFNet): ImageFolder with ``Resize((224, 224)), ToTensor()`` on RGB.

Epochs of the two loaders alternate in the same process, so machine load hits both alike; the
figure is the ratio of images per second. Acceptance: >= 3x ImageFolder at 48x48 grey and not
slower at 224x224 colour. Images: drawn faces (48 px: the real CK+48 dev faces from
``../shared/realdata`` when present, read in place, never copied into the repository).

Usage::

    .venv/bin/python bench/loader.py [--n48 4000] [--n224 800] [--epochs 3] [--workers 0]

See docs/bench.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata" / "ckplus48-dev"
sys.path.insert(0, str(ROOT / "tests"))  # the drawn-face fixture of the shard tests


def write_inputs(base: Path, n: int, size: int, channels: int, real: bool) -> tuple[Path, Path]:
    """``crops.parquet`` + shards under ``base/shards`` and the same PNGs under ``base/folder``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from crops_fixture import draw_face, png

    from pipeline.core.labels import LABEL_INDEX, LABEL_NAMES
    from pipeline.shard.build import Settings, build

    images: list[tuple[int, bytes]] = []
    if real:
        names = {"happy": "happiness"}
        files = sorted(REALDATA.rglob("*.png"))
        for i in range(n):  # cycle the dev set to n images
            f = files[i % len(files)]
            images.append((LABEL_INDEX[names.get(f.parent.name, f.parent.name)], f.read_bytes()))
    else:
        labels = [1, 3, 4, 5, 6, 7, 0]
        for i in range(n):
            label = labels[i % len(labels)]
            images.append((label, png(draw_face(label, i, size, channels))))
    rows = [{"image_id": f"bench/{i:06d}", "dataset": "bench", "label": lab, "label_name": LABEL_NAMES[lab],
             "subject": None, "source_split": None, "image": data} for i, (lab, data) in enumerate(images)]
    (base / "aligned").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), base / "aligned" / "crops.parquet")
    settings = Settings(split={"protocol": "ratio", "ratios": {"train": 1.0, "validation": 0.0, "test": 0.0}},
                        balance={"method": "none"}, augment={"preset": "none", "factor": 1}, shard={})
    build("bench", base / "aligned", base / "shards", settings)
    for r in rows:
        d = base / "folder" / r["label_name"]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{r['image_id'].split('/')[1]}.png").write_bytes(r["image"])
    return base / "shards", base / "folder"


def epoch(loader) -> float:
    """Seconds for one pass over ``loader`` (touching every batch)."""
    start = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += x.shape[0]
    return time.perf_counter() - start


def compare(name: str, shard_ds, folder_ds, epochs: int, workers: int) -> float:
    import torch
    from torch.utils.data import DataLoader

    assert len(shard_ds) == len(folder_ds)
    x_s, _ = shard_ds[0]
    x_f, _ = folder_ds[0]
    assert x_s.shape == x_f.shape, (x_s.shape, x_f.shape)
    times = {"shards": [], "imagefolder": []}
    # one loader per dataset for all epochs; workers persist across epochs, as in training
    loaders = {key: DataLoader(ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0),
                               num_workers=workers, persistent_workers=workers > 0)
               for key, ds in (("shards", shard_ds), ("imagefolder", folder_ds))}
    for _ in range(epochs):
        for key, loader in loaders.items():
            times[key].append(epoch(loader))
    n = len(shard_ds)
    rate = {k: n * len(v) / sum(v) for k, v in times.items()}
    first = {k: n / v[0] for k, v in times.items()}
    ratio = rate["shards"] / rate["imagefolder"]
    print(f"{name}: {n} images, {epochs} epochs, {workers} workers | shards {rate['shards']:8.0f} img/s "
          f"(first epoch {first['shards']:.0f}) | ImageFolder {rate['imagefolder']:8.0f} img/s "
          f"(first epoch {first['imagefolder']:.0f}) | ratio {ratio:.2f}x", flush=True)
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n48", type=int, default=4000)
    parser.add_argument("--n224", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from torchvision import datasets, transforms

    from pipeline.shards.dataset import ShardDataset

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="fer-loader-") as tmp:
        real = REALDATA.is_dir()
        shards, folder = write_inputs(Path(tmp) / "g48", args.n48, 48, 1, real)
        grey = compare(f"48x48 grey ({'real CK+48 dev faces' if real else 'drawn faces'})",
                       ShardDataset(shards, "train", channels=1, size=48),
                       datasets.ImageFolder(folder, transform=transforms.Compose(
                           [transforms.Grayscale(1), transforms.Resize(48), transforms.ToTensor()])),
                       args.epochs, args.workers)
        shards, folder = write_inputs(Path(tmp) / "c224", args.n224, 224, 3, False)
        colour = compare("224x224 colour (drawn faces)",
                         ShardDataset(shards, "train", channels=3, size=224),
                         datasets.ImageFolder(folder, transform=transforms.Compose(
                             [transforms.Resize((224, 224)), transforms.ToTensor()])),
                         args.epochs, args.workers)
    print(f"\nacceptance: 48x48 grey >= 3x: {grey >= 3.0} ({grey:.2f}x); "
          f"224x224 colour >= 1x: {colour >= 1.0} ({colour:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
