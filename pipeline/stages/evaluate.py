"""Stage ``evaluate``: score one trained or distilled model on its test data.

``fer-pipeline evaluate --model ean --dataset rafdb`` reads ``models/<model>-<dataset>/checkpoint.pt``
(``--fold K``: the ``-fold<K>`` run), the test part of ``data/processed/<dataset>/`` for the
checkpoint's fold, and the ``evaluate`` params; writes ``eval/<model>-<dataset>/``: ``metrics.json``,
``confusion.json``, ``confusion.png``, ``model.onnx``. Without test rows (a FER2013 copy without
PrivateTest) it scores the validation part instead and says so (``part`` in metrics.json). The rows are scored on the top-level
``device`` (``--device`` overrides it); ONNX and latency stay on the CPU. The work is in
:mod:`pipeline.evaluation.evaluate`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core import device, params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="run's model name (ean, resatt, ..., ean_distilled)")
    parser.add_argument("--dataset", required=True, help="dataset name")
    parser.add_argument("--fold", type=int, default=None, help="evaluate the run trained with --fold K")
    parser.add_argument("--data", default="data/processed", help="root of the processed shards")
    parser.add_argument("--models", default="models", help="root of the model directories")
    parser.add_argument("--out", default="eval", help="root of the evaluation directories")
    params.add_argument(parser)
    device.add_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.evaluation.evaluate import evaluate_checkpoint
    from pipeline.training.checkpoint import read_checkpoint
    from pipeline.training.data import load_split_data
    from pipeline.training.recipe import load_recipe
    from pipeline.training.runs import run_name

    on = device.stage_device(args.device, args.params)
    settings = load_recipe("evaluate", None, args.params)
    name = run_name(args.model, args.dataset, args.fold)
    ckpt_path = Path(args.models) / name / "checkpoint.pt"
    fold = int(read_checkpoint(ckpt_path).get("fold", -1))
    data = load_split_data(Path(args.data) / args.dataset, fold if fold >= 0 else None)
    # a copy without test rows (FER2013 without PrivateTest) is scored on its validation part,
    # labelled so (metrics.json "part"; the report marks it): the part its choices were made on
    part, rows = ("test", data.test) if len(data.test) else ("validation", data.validation)
    m = evaluate_checkpoint(ckpt_path, rows, Path(args.out) / name, settings, name=name, device=on, part=part)
    lat = m.get("latency")
    speed = (f", {lat['ms_per_frame']:.3f} ms/frame vs MobileNetV2 {lat['reference_ms_per_frame']:.3f} ms "
             f"(ratio {lat['ratio']:.2f}x)") if lat else ""
    print(f"{name}: {part} accuracy {m['accuracy']:.4f} (n={m['n']}), macro F1 {m['macro']['f1']:.4f}, "
          f"{m['params']:,} params, {m['flops'] / 1e6:.2f} MFLOPs{speed}; ONNX max |diff| "
          f"{m['onnx']['max_abs_diff']:.2e}")
    return 0
