"""Benchmark of ``ingest`` on a FER2013-sized CSV: throughput and peak memory, as ratios.

Writes a ``fer2013.csv`` of ``--rows`` random 48x48 faces (default 35,887, the real file's size,
~300 MB) to a temporary directory, then in the same process:

1. ingest it (in-process chunk mapping: the Prefect runner adds a fixed start-up cost, not
   per-image cost) and record the time and the growth of peak RSS;
2. the baseline: parse the same CSV the way ``torchvision.datasets.FER2013`` does (every row
   into a uint8 tensor, all held in a list).

Prints ingest time / baseline time, and peak RSS growth during ingest / the size of the CSV,
which stays far below 1 because rows stream through in chunks.

    .venv/bin/python bench/bench_ingest.py [--rows 35887] [--chunk-size 256]

Recorded figures: docs/bench.md.
"""

from __future__ import annotations

import argparse
import csv
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    usages = ["Training"] * 8 + ["PublicTest", "PrivateTest"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for i in range(rows):
            px = rng.integers(0, 256, 48 * 48)
            w.writerow([i % 7, " ".join(map(str, px.tolist())), usages[i % 10]])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def torchvision_style_parse(path: Path) -> int:
    import torch

    with open(path, newline="") as fh:
        samples = [(torch.tensor([int(v) for v in row["pixels"].split()], dtype=torch.uint8).reshape(48, 48),
                    int(row["emotion"])) for row in csv.DictReader(fh)]
    return len(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=35887)
    parser.add_argument("--chunk-size", type=int, default=256)
    args = parser.parse_args()

    from pipeline.ingest import ingest_dataset

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "fer2013"
        raw.mkdir()
        write_csv(raw / "fer2013.csv", args.rows)
        csv_mb = (raw / "fer2013.csv").stat().st_size / 2**20
        # imported before measuring, so neither side pays for imports
        import PIL.PngImagePlugin  # noqa: F401
        import pyarrow.parquet  # noqa: F401
        import torch  # noqa: F401
        import tqdm  # noqa: F401

        import pipeline.ingest.manifest  # noqa: F401
        import pipeline.ingest.readers  # noqa: F401

        rss0 = peak_rss_mb()
        t0 = time.perf_counter()
        summary = ingest_dataset("fer2013", raw, Path(tmp) / "out",
                                 {"chunk_size": args.chunk_size, "window_chunks": 16}, progress=False)
        t_ingest = time.perf_counter() - t0
        rss_growth = peak_rss_mb() - rss0
        manifest_mb = (Path(tmp) / "out" / "manifest.parquet").stat().st_size / 2**20

        t0 = time.perf_counter()
        n = torchvision_style_parse(raw / "fer2013.csv")
        t_base = time.perf_counter() - t0

    print(f"rows {args.rows}: csv {csv_mb:.0f} MiB, manifest {manifest_mb:.1f} MiB, kept {summary['kept']}")
    print(f"ingest {t_ingest:.1f} s ({args.rows / t_ingest:.0f} rows/s); torchvision-style parse of {n} rows "
          f"{t_base:.1f} s; ratio ingest/parse = {t_ingest / t_base:.2f}")
    print(f"peak RSS growth during ingest {rss_growth:.0f} MiB = {rss_growth / csv_mb:.2f} x the CSV size")


if __name__ == "__main__":
    main()
