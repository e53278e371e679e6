"""Stage ``report``: ``reports/results.md`` + ``reports/metrics.json`` from every evaluation.

``fer-pipeline report`` reads ``eval/*/metrics.json`` (the distilled models' rounds included) and the
sample marker under ``data/raw`` (provenance); ``--print`` also prints the results table (``make
repro`` calls it last). The work is in :mod:`pipeline.reporting.report`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.core import params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eval", default=None, help="evaluations root (default: report.eval_dir)")
    parser.add_argument("--raw", default="data/raw", help="raw data root (its sample marker tells the provenance)")
    parser.add_argument("--out", default="reports", help="output directory")
    parser.add_argument("--print", dest="print_table", action="store_true", help="print the results table")
    params.add_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.core.atomic import write_text
    from pipeline.core.params import load
    from pipeline.reporting.report import build_report

    params = load(args.params)
    settings = params.get("report") or {}
    md, doc, table = build_report(args.eval or settings.get("eval_dir", "eval"), args.raw, params.get("profile"))
    out = Path(args.out)
    write_text(out / "results.md", md)
    write_text(out / "metrics.json", json.dumps(doc, indent=2, default=str) + "\n")
    if args.print_table:
        print(md.split("\n## Accuracy", 1)[0].strip())
        print()
        print(table)
    print(f"wrote {out / 'results.md'} and {out / 'metrics.json'} ({len(doc['runs'])} rows)")
    return 0
