"""Stage-less command ``predict``: detect, align and classify the faces of photographs and videos.

``fer-pipeline predict --checkpoint models/ean-rafdb/checkpoint.pt photos/ clip.mp4`` (or
``--model model.onnx``, a file of ``fer-pipeline export``; neither: the model shipped inside
``fer_models`` by ``fer-pipeline publish``, said so on stderr) takes files, folders (recursively),
globs and videos (every ``--every`` N-th frame), and prints one line per face; ``--json`` prints
the rows as one JSON array instead, ``--csv PATH`` writes them as CSV, ``--annotate DIR`` writes
each input with its faces drawn. Runs from any directory: the model carries what it needs. Exit
status 0, 1 when an input was unreadable (the others are still done), 2 when the model or an
option is wrong. The work is in :mod:`pipeline.inference.run`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from pipeline.core import params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="images, folders (searched recursively), globs ('photos/**/*.jpg') or videos "
                             "(.mp4 .avi .mov ...)")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", help="a checkpoint.pt written by train or distill (neither this nor "
                       "--model: the model shipped in fer_models)")
    model.add_argument("--model", help="a model written by `fer-pipeline export` (.onnx runs in ONNX Runtime)")
    parser.add_argument("--device", default=None,
                        help="where MTCNN and the network run: auto (CUDA when present), cpu, cuda, cuda:N or mps "
                             "(default: the params file's `device`, else auto)")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="videos: every N-th frame (default 1)")
    parser.add_argument("--no-track", dest="track", action="store_false",
                        help="videos: detect faces on every whole frame instead of following them")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON array instead of text")
    parser.add_argument("--csv", metavar="PATH", help="write the rows as CSV ('-': to stdout)")
    parser.add_argument("--annotate", metavar="DIR", help="write each input with boxes, labels and confidences drawn")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    params.add_argument(parser)


def _error(message: str) -> int:
    print(f"fer-pipeline predict: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if "torch" not in sys.modules:  # OpenMP reads it when torch loads
        # Idle OpenMP threads sleep instead of spinning: MTCNN runs many tiny parallel ops, and on a
        # machine where another process holds a core, spinning threads made 2-thread detection 10-15x
        # slower than 1 thread (bench/predict.py, docs/bench.md); sleeping costs nothing measurable.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from pipeline.inference.annotate import Annotator
    from pipeline.inference.predictor import Predictor
    from pipeline.inference.run import PredictRun
    from pipeline.inference.sources import expand
    from pipeline.inference.spec import ModelError
    from pipeline.inference.table import open_csv, rows_json, text_line

    if args.every < 1:
        return _error(f"--every must be >= 1, got {args.every}")
    if args.json and args.csv == "-":
        return _error("--json and --csv - both want stdout; give --csv a file")
    try:
        predictor = Predictor.open(checkpoint=args.checkpoint, model=args.model, params=args.params, device=args.device)
    except (ModelError, FileNotFoundError) as exc:
        return _error(str(exc))
    annotator = Annotator(args.annotate, predictor.names) if args.annotate else None
    job = PredictRun(predictor, every=args.every, track=args.track, annotator=annotator,
                     progress=not args.no_progress)
    to_stdout = args.json or args.csv == "-"
    info = sys.stderr if to_stdout else sys.stdout
    print(f"model: {predictor.spec.arch or 'network'} ({predictor.backend.name}), classes "
          f"{', '.join(predictor.names)}; {predictor.spec.source}", file=sys.stderr)
    collected = []
    try:
        with open_csv(args.csv, predictor.names) if args.csv else contextlib.nullcontext() as sink:
            for row in job.rows(expand(args.inputs)):
                if row.status == "unreadable":
                    print(f"fer-pipeline predict: {row.detail}", file=sys.stderr)
                if sink is not None:
                    sink.write(row)
                if args.json:
                    collected.append(row)
                elif not args.csv and row.status != "unreadable":
                    print(text_line(row), flush=True)
    except KeyboardInterrupt:
        print("fer-pipeline predict: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(rows_json(collected))
    print(f"predict: {job.summary.line()}", file=info)
    return 1 if job.summary.unreadable else 0
