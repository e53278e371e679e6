"""Stage ``sample``: write the synthetic sample of every dataset in its native layout.

``fer-pipeline sample --out data/raw [--per-class N] [--seed S] [--datasets fer2013 ckplus ...]``
writes ``data/raw/<dataset>/`` exactly as the real dataset ships, with procedural faces (see
:mod:`pipeline.synthetic`). Counts and seed come from the ``sample`` section of params.yaml
(``defaults`` + per-dataset overrides) unless given on the command line. A dataset folder that the
generator did not write (real data) is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pipeline.synthetic.layouts import WRITERS

    parser.add_argument("--out", default="data/raw", help="raw data root (default: data/raw)")
    parser.add_argument("--per-class", type=int, default=None,
                        help="examples per class for every dataset (default: params.yaml sample.*)")
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: sample.defaults.seed)")
    parser.add_argument("--datasets", nargs="+", choices=sorted(WRITERS), default=None,
                        help="datasets to write (default: all)")
    parser.add_argument("--force", action="store_true", help="overwrite folders not written by the generator")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: number of CPUs)")


def run(args: argparse.Namespace) -> int:
    from pipeline.core.params import section
    from pipeline.synthetic import write_sample

    seed = args.seed if args.seed is not None else int(section("sample").get("seed", 0))
    start = time.perf_counter()
    counts = write_sample(args.out, datasets=args.datasets, per_class=args.per_class, seed=seed, force=args.force,
                          jobs=args.jobs)
    for name, n in counts.items():
        print(f"{name}: {n} files -> {args.out}/{name}")
    print(f"sample written in {time.perf_counter() - start:.1f} s (seed {seed})")
    return 0
