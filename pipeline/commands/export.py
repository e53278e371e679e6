"""Stage-less command ``export``: one file holding a checkpoint's network and what it needs.

``fer-pipeline export --checkpoint models/ean-rafdb/checkpoint.pt --format onnx --out ean.onnx``
writes an ONNX (or TorchScript) file carrying the class names, input size, channels, mean/std
and alignment settings, which ``fer-pipeline predict --model ean.onnx`` runs with ONNX Runtime;
the file is checked against the checkpoint before the command ends. The work is in
:mod:`pipeline.inference.export`.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.core import params

#: largest probability difference between the file and the checkpoint that passes the check
TOLERANCE = 1e-4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by train or distill")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default=None,
                        help="onnx (ONNX Runtime) or torchscript (default: from --out's suffix, .onnx or .pt)")
    parser.add_argument("--out", required=True, help="the file to write, e.g. ean.onnx")
    params.add_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.inference.export import export_model
    from pipeline.inference.spec import ModelError

    try:
        done = export_model(args.checkpoint, args.out, args.format, params=args.params)
    except (ModelError, FileNotFoundError) as exc:
        print(f"fer-pipeline export: error: {exc}", file=sys.stderr)
        return 2
    s = done.spec
    print(f"export: {done.path} ({done.format}): {s.arch}, classes {', '.join(s.class_names)}, input "
          f"{'x'.join(map(str, s.input_shape))}, mean {s.input['mean']} std {s.input['std']}, "
          f"crops {s.align['px']} px {s.align['colour']} margin {s.align['margin']}")
    ok = done.max_prob_diff <= TOLERANCE
    print(f"export: probabilities {'agree' if ok else 'DISAGREE'} with the checkpoint (largest difference "
          f"{done.max_prob_diff:.1e}, tolerance {TOLERANCE:.0e})", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1
