"""Stage ``ingest``: read one dataset's native layout into ``manifest.parquet`` (+ quarantine, summary).

``fer-pipeline ingest <dataset> --raw data/raw/<dataset> --out data/interim/<dataset>``; params
``ingest.defaults`` + ``ingest.<dataset>``. The work is in :mod:`pipeline.ingest`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.core import params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="fer2013, ckplus, jaffe, rafdb or kdef")
    parser.add_argument("--raw", required=True, type=Path, help="the dataset's native layout, data/raw/<dataset>")
    parser.add_argument("--out", required=True, type=Path, help="output directory, data/interim/<dataset>")
    params.add_argument(parser)
    parser.add_argument("--no-prefect", action="store_true",
                        help="decode chunks in this process instead of as Prefect tasks (same output)")


def run(args: argparse.Namespace) -> int:
    from pipeline.ingest import format_summary, ingest_dataset
    from pipeline.ingest.readers import LayoutError
    from pipeline.runner.flows import window_runner

    cfg = params.section("ingest", args.dataset, path=args.params)
    try:
        summary = ingest_dataset(args.dataset, args.raw, args.out, cfg,
                                 run_window=window_runner(f"ingest-{args.dataset}", prefect=not args.no_prefect))
    except (LayoutError, ValueError) as exc:
        print(f"fer-pipeline ingest: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    print(f"wrote {args.out}/manifest.parquet, quarantine.parquet, summary.json")
    return 0
