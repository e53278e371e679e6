"""Stage ``shard``: split, balance, augment and write Parquet shards of one dataset.

``fer-pipeline shard <dataset> --aligned data/aligned/<dataset> --out data/processed/<dataset>``
reads ``split.*``, ``balance.*``, ``augment.*`` and ``shard.*`` of ``params.yaml`` (defaults merged
with the dataset's overrides); the work is in :mod:`pipeline.shard_build`.
"""

from __future__ import annotations

import argparse
import json

SECTIONS: tuple[str, ...] = ("split", "balance", "augment", "shard")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset name (fer2013, ckplus, jaffe, rafdb, kdef)")
    parser.add_argument("--aligned", required=True, help="align stage output directory (holds crops.parquet)")
    parser.add_argument("--out", required=True, help="output directory of the shards (replaced atomically)")
    parser.add_argument("--params", default=None, help="params file (default: $FER_PARAMS or ./params.yaml)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings_for(dataset: str, params_file: str | None = None):
    """The merged settings of the four sections for ``dataset``."""
    from pipeline import params
    from pipeline.shard_build import Settings

    loaded = params.load(params_file)
    return Settings(**{s: params.section(s, dataset, params=loaded) for s in SECTIONS})


def run(args: argparse.Namespace) -> int:
    from pipeline.shard_build import build

    stats = build(args.dataset, args.aligned, args.out, settings_for(args.dataset, args.params),
                  progress=not args.no_progress)
    summary = {s: {"originals": v["originals"], "derived": v["derived"]} for s, v in stats["splits"].items()}
    print(json.dumps({"dataset": args.dataset, "out": str(args.out), "splits": summary,
                      "dropped_by_balance": stats["accounting"]["dropped_by_balance"]}))
    return 0
