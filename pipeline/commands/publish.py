"""Stage-less command ``publish``: ship a trained network inside ``fer_models``, timm-style.

``fer-pipeline publish --checkpoint models/ean_distilled-fer2013/checkpoint.pt --name ean [--lock dvc.lock]``
writes ``fer_models/weights/ean.pt`` (the weights) and ``ean.json`` (sha256, classes, mean/std,
input size, the predict spec and the provenance: profile, checkpoint hash, validation accuracy,
rounds, the DVC hashes of the shards and the checkpoint), which ``create_model("ean", pretrained=True)``
loads after checking the hash. Only weights enter the repository, never a face. The work is in
:mod:`pipeline.inference.export`.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.core import params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by train or distill")
    parser.add_argument("--name", required=True, help="the registered model it ships for (e.g. ean)")
    parser.add_argument("--lock", default=None, help="dvc.lock: record the DVC hashes of the shards and the run")
    parser.add_argument("--shards", default=None,
                        help="the shards it was trained on, hashed into the provenance (default data/processed/<dataset>)")
    parser.add_argument("--command", default=None, help="the command line that remakes it, kept in the provenance")
    parser.add_argument("--out", default=None, help="folder to write to (default: fer_models/weights/)")
    params.add_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.inference.export import publish_checkpoint
    from pipeline.inference.spec import ModelError

    try:
        path = publish_checkpoint(args.checkpoint, args.name, lock=args.lock, params=args.params, out=args.out,
                                  shards=args.shards, command=args.command)
    except (ModelError, FileNotFoundError) as exc:
        print(f"fer-pipeline publish: error: {exc}", file=sys.stderr)
        return 2
    print(f"publish: {path} and {path.with_suffix('.json')} (create_model({args.name!r}, pretrained=True))")
    return 0
