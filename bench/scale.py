"""Scaling of the data stages: wall time and peak RSS of ingest, align and shard at 1k, 4k, 16k images.

For every size the synthetic generator (``fer-pipeline sample``) writes a FER2013 CSV of that many
faces, then each stage runs as its own ``fer-pipeline`` subprocess; its wall time and its peak
resident memory (``os.wait4`` rusage of that child and its descendants) are recorded. The figures
to read are the ratios against the smallest size, measured in the same run:

* time should grow about linearly (``time ratio`` close to the ``size ratio``);
* peak memory should stay about flat (16k within 1.5x of 1k): every stage streams in chunks.

The shard stage runs with oversampling and a 2x offline augmentation (preset ``light``) so the
decode-augment-encode path is measured, not only the copy of the originals. Chunks run in-process
(``--no-prefect``) where a stage offers it: a Prefect runner adds a fixed start-up cost, not a
per-image one (``--prefect`` measures the default path instead).

Usage::

    .venv/bin/python bench/scale.py                    # 1000 4000 16000
    .venv/bin/python bench/scale.py --sizes 500 2000 --keep /tmp/scale

See docs/bench.md.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "fer-pipeline"
DATASET = "fer2013"
N_CLASSES = 7
STAGES = ("ingest", "align", "shard")


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd``; its wall time (s) and peak RSS (MiB, itself or its largest descendant)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(out.decode(errors="replace")[-3000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024  # Linux: KiB


def bench_params(path: Path) -> None:
    """The project's params with the shard stage made to do real work (balance + augment)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["balance"][DATASET] = {"method": "oversample"}
    params["augment"][DATASET] = {"preset": "light", "factor": 2}
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def stage_commands(work: Path, prefect: bool) -> dict[str, list[str]]:
    no_prefect = [] if prefect else ["--no-prefect"]
    return {
        "ingest": [str(BIN), "ingest", DATASET, "--raw", str(work / "raw" / DATASET),
                   "--out", str(work / "interim" / DATASET), *no_prefect],
        "align": [str(BIN), "align", DATASET, "--manifest", str(work / "interim" / DATASET),
                  "--out", str(work / "aligned" / DATASET), "--no-progress"],
        "shard": [str(BIN), "shard", DATASET, "--aligned", str(work / "aligned" / DATASET),
                  "--out", str(work / "processed" / DATASET), "--no-progress", *no_prefect],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: temporary)")
    parser.add_argument("--prefect", action="store_true", help="run chunks as Prefect tasks (the default path)")
    args = parser.parse_args(argv)

    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="fer-scale-")
    base = args.keep or Path(tmp.name)
    base.mkdir(parents=True, exist_ok=True)
    params = base / "params.yaml"
    bench_params(params)
    env = {**os.environ, "FER_PARAMS": str(params), "OMP_NUM_THREADS": "1"}
    # align always runs a Prefect flow; on a loaded machine its temporary server needs more than 20 s
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    results: dict[tuple[str, int], tuple[float, float]] = {}
    images: dict[int, int] = {}
    try:
        for size in args.sizes:
            work = base / f"n{size}"
            per_class = math.ceil(size / N_CLASSES)
            wall, rss = measured([str(BIN), "sample", "--out", str(work / "raw"), "--datasets", DATASET,
                                  "--per-class", str(per_class), "--force"], env)
            images[size] = per_class * N_CLASSES
            print(f"n={images[size]:>6}  sample (setup) {wall:7.1f} s  {rss:7.0f} MiB", flush=True)
            for stage, cmd in stage_commands(work, args.prefect).items():
                results[stage, size] = measured(cmd, env)
                wall, rss = results[stage, size]
                print(f"n={images[size]:>6}  {stage:<14} {wall:7.1f} s  {rss:7.0f} MiB", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()

    first = args.sizes[0]
    print("\nratios against the smallest size (same run):")
    print(f"{'stage':<8}{'images':>8}{'size x':>9}{'time x':>9}{'peak RSS x':>12}{'ms/image':>10}{'peak MiB':>10}")
    for stage in STAGES:
        t0, m0 = results[stage, first]
        for size in args.sizes:
            t, m = results[stage, size]
            print(f"{stage:<8}{images[size]:>8}{images[size] / images[first]:>9.1f}{t / t0:>9.2f}"
                  f"{m / m0:>12.2f}{1000 * t / images[size]:>10.2f}{m:>10.0f}")
    last = args.sizes[-1]
    flat = all(results[s, last][1] <= 1.5 * results[s, first][1] for s in STAGES)
    print(f"\npeak memory at {images[last]} within 1.5x of {images[first]} for every stage: {flat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
