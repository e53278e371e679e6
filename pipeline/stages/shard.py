"""Stage ``shard``: split, balance, augment and write Parquet shards of one dataset.

``fer-pipeline shard <dataset> --aligned data/aligned/<dataset> --out data/processed/<dataset>``
reads ``split.*``, ``balance.*``, ``augment.*`` and ``shard.*`` of ``params.yaml`` (defaults merged
with the dataset's overrides); the work is in :mod:`pipeline.shard`. Chunks run as Prefect tasks,
``shard.window_chunks`` per flow run so memory stays bounded; ``--no-prefect`` runs them in this
process (same output, byte for byte).
"""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.core import params

SECTIONS: tuple[str, ...] = ("split", "balance", "augment", "shard")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset name (fer2013, ckplus, jaffe, rafdb, kdef)")
    parser.add_argument("--aligned", required=True, help="align stage output directory (holds crops.parquet)")
    parser.add_argument("--out", required=True, help="output directory of the shards (replaced atomically)")
    params.add_argument(parser)
    parser.add_argument("--no-prefect", action="store_true",
                        help="process chunks in this process instead of as Prefect tasks (same output)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings_for(dataset: str, params_file: str | None = None):
    """The merged settings of the four sections for ``dataset``."""
    from pipeline.shard.build import Settings

    loaded = params.load(params_file)
    return Settings(**{s: params.section(s, dataset, params=loaded) for s in SECTIONS})


def run(args: argparse.Namespace) -> int:
    from pipeline.runner.flows import window_runner
    from pipeline.shard.augment import AugmentError
    from pipeline.shard.balance import BalanceError
    from pipeline.shard.build import ShardInputError, build
    from pipeline.shard.splits import SplitError

    try:
        settings = settings_for(args.dataset, args.params)
        stats = build(args.dataset, args.aligned, args.out, settings,
                      run_window=window_runner(f"shard-{args.dataset}", prefect=not args.no_prefect),
                      progress=not args.no_progress)
    except (ShardInputError, SplitError, BalanceError, AugmentError) as exc:
        print(f"fer-pipeline shard: error: {exc}", file=sys.stderr)
        return 2
    summary = {s: {"originals": v["originals"], "derived": v["derived"]} for s, v in stats["splits"].items()}
    print(json.dumps({"dataset": args.dataset, "out": str(args.out), "splits": summary,
                      "dropped_by_balance": stats["accounting"]["dropped_by_balance"]}))
    return 0
