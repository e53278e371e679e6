"""``fer-pipeline models``: print the model zoo -- parameters and FLOPs of every variant against the papers.

FLOPs are counted by fvcore at each paper's input size with batch 1, in the convention the model's
paper uses (see ``pipeline/evaluation/complexity.py``): one multiply-add = one flop.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", dest="models", metavar="NAME",
                        help="only this model (repeatable; default: every registered model)")
    parser.add_argument("--no-variants", action="store_true", help="only each model's default variant")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a Markdown table")


def run(args: argparse.Namespace) -> int:
    import fer_models
    from pipeline.reporting.zoo import format_table, zoo_rows

    known = fer_models.list_models()
    unknown = [m for m in args.models or [] if m not in known]
    if unknown:
        raise SystemExit(f"fer-pipeline models: unknown model(s) {', '.join(unknown)}; known: {', '.join(known)}")
    rows = zoo_rows(args.models, variants=not args.no_variants)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(format_table(rows))
    return 0
