"""``fer-pipeline align <dataset>``: detect, align and crop the faces of one dataset (MTCNN).

Reads ``<manifest>/manifest.parquet`` (docs/architecture.md, "Manifest") and writes
``crops.parquet``, ``outcomes.parquet``, ``summary.json`` and ``contact_sheet.png`` into ``--out``
("Aligned crops"). Settings: ``params.yaml`` ``align.defaults`` merged with ``align.<dataset>``;
MTCNN runs on the top-level ``device`` (``--device`` overrides it: a GPU when there is one).
The work is in :mod:`pipeline.align`.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.core import device, params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset name (its align.<dataset> params apply)")
    parser.add_argument("--manifest", required=True, help="ingest output directory holding manifest.parquet")
    parser.add_argument("--out", required=True, help="output directory, e.g. data/aligned/<dataset>")
    params.add_argument(parser)
    device.add_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from pipeline.align.chunks import CorruptPart
    from pipeline.align.dataset import align_dataset
    from pipeline.align.settings import AlignSettings

    try:
        settings = AlignSettings.from_dict(params.section("align", args.dataset, path=args.params),
                                           where=f"align.{args.dataset}")
        settings = dataclasses.replace(settings, device=str(device.stage_device(args.device, args.params)))
        s = align_dataset(args.manifest, args.out, args.dataset, settings, progress=not args.no_progress)
    except (CorruptPart, FileNotFoundError) as exc:
        print(f"fer-pipeline align: error: {exc}", file=sys.stderr)
        return 2
    rate = "n/a" if s["detection_rate"] is None else f"{s['detection_rate']:.1%}"
    print(f"align {args.dataset}: {s['images']} images -> detected {s['detected']}, precropped {s['precropped']}, "
          f"fallback {s['fallback']}, quarantined {s['quarantined']}; MTCNN detection rate {rate}; "
          f"{s['computed']}/{s['chunks']} chunk(s) computed" + (" (up to date)" if s["up_to_date"] else ""))
    return 0
