"""Stage-less command ``predict``: detect, align and classify the faces of photographs.

``fer-pipeline predict --checkpoint models/ean-rafdb/checkpoint.pt photo.jpg ...`` prints, per
image and face, the box, the predicted label and every class probability (``--json``: one JSON
document). The work is in :mod:`pipeline.inference.predictor`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from pipeline.core import params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by train or distill")
    parser.add_argument("images", nargs="+", help="photographs (any size, any number of faces)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    params.add_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.core.params import load
    from pipeline.inference.predictor import Predictor

    predictor = Predictor(args.checkpoint, load(args.params))
    results = {path: predictor.predict_file(path) for path in args.images}
    if args.json:
        print(json.dumps({p: [asdict(f) for f in faces] for p, faces in results.items()}, indent=2))
        return 0
    for path, faces in results.items():
        print(f"{path}: {len(faces)} face(s)")
        for i, f in enumerate(faces):
            probs = "  ".join(f"{n} {v:.3f}" for n, v in sorted(f.probabilities.items(), key=lambda kv: -kv[1]))
            print(f"  face {i} box {f.box}: {f.label}  ({probs})")
    return 0
