"""Stage ``shard``: split, balance, augment and write Parquet shards of one dataset.

``fer-pipeline shard <dataset> --aligned data/aligned/<dataset> --out data/processed/<dataset>``
reads ``split.*``, ``balance.*``, ``augment.*`` and ``shard.*`` of ``params.yaml`` (defaults merged
with the dataset's overrides); the work is in :mod:`pipeline.shard_build`. Chunks are processed
as Prefect tasks (:func:`pipeline.orchestration.run_chunks`, runner from ``flow`` in params.yaml),
``shard.window_chunks`` chunks per flow run so memory stays bounded; ``--no-prefect`` processes
them in this process (same output, byte for byte).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from functools import partial
from typing import Any, Iterator

SECTIONS: tuple[str, ...] = ("split", "balance", "augment", "shard")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset name (fer2013, ckplus, jaffe, rafdb, kdef)")
    parser.add_argument("--aligned", required=True, help="align stage output directory (holds crops.parquet)")
    parser.add_argument("--out", required=True, help="output directory of the shards (replaced atomically)")
    parser.add_argument("--params", default=None, help="params file (default: $FER_PARAMS or ./params.yaml)")
    parser.add_argument("--no-prefect", action="store_true",
                        help="process chunks in this process instead of as Prefect tasks (same output)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings_for(dataset: str, params_file: str | None = None):
    """The merged settings of the four sections for ``dataset``."""
    from pipeline import params
    from pipeline.shard_build import Settings

    loaded = params.load(params_file)
    return Settings(**{s: params.section(s, dataset, params=loaded) for s in SECTIONS})


def map_prefect(flow_name: str, window_chunks: int, chunks: Iterator[list[dict[str, Any]]],
                job: Any) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Process ``chunks`` as Prefect tasks, ``window_chunks`` per flow run; results in order."""
    from pipeline import orchestration
    from pipeline.shard_build import process_chunk

    fn = partial(process_chunk, job=job)
    while window := list(itertools.islice(chunks, window_chunks)):
        yield from orchestration.run_chunks(flow_name, fn, window)


def run(args: argparse.Namespace) -> int:
    from pipeline.augment import AugmentError
    from pipeline.balance import BalanceError
    from pipeline.shard_build import ShardInputError, build
    from pipeline.splits import SplitError

    try:
        settings = settings_for(args.dataset, args.params)
        mapper = None if args.no_prefect else partial(
            map_prefect, f"shard-{args.dataset}", int(settings.shard.get("window_chunks", 8)))
        stats = build(args.dataset, args.aligned, args.out, settings, map_chunks=mapper,
                      progress=not args.no_progress)
    except (ShardInputError, SplitError, BalanceError, AugmentError) as exc:
        print(f"fer-pipeline shard: error: {exc}", file=sys.stderr)
        return 2
    summary = {s: {"originals": v["originals"], "derived": v["derived"]} for s, v in stats["splits"].items()}
    print(json.dumps({"dataset": args.dataset, "out": str(args.out), "splits": summary,
                      "dropped_by_balance": stats["accounting"]["dropped_by_balance"]}))
    return 0
