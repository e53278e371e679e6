"""The ``fer-pipeline`` command: one subcommand per module of the same name.

A DVC stage's subcommand is ``pipeline/stages/<name>.py``, any other ``pipeline/commands/<name>.py``.
Each defines ``add_arguments(parser)`` and ``run(args) -> int`` and keeps heavy imports (torch,
facenet) inside its functions so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# DVC stage -> one-line help; the module pipeline.stages.<stage> implements it
STAGES: dict[str, str] = {
    "ingest": "read one dataset's native layout into a manifest (+ quarantine)",
    "align": "detect, align and crop the faces of one dataset (MTCNN)",
    "shard": "split, balance, augment and write Parquet shards of one dataset",
    "pretrain": "pretrain recipes on synthetic faces (for init: pretrained)",
    "train": "train one model on one dataset",
    "distill": "iterative teacher-student distillation of EAN",
    "evaluate": "evaluate a trained model on its test data",
    "cv": "subject-independent k-fold cross-validation of models (mean ± std over folds)",
    "report": "write reports/results.md and metrics.json",
}

# other subcommand -> one-line help; the module pipeline.commands.<subcommand> implements it
COMMANDS: dict[str, str] = {
    "sample": "write the synthetic sample of every dataset in its native layout",
    "models": "print the model zoo: parameters and FLOPs against the papers",
    "predict": "detect, align and classify faces in photographs, folders and videos",
    "export": "write a checkpoint as one ONNX or TorchScript file with its classes and preprocessing",
    "publish": "ship a trained network inside fer_models (weights, sha256, classes, provenance)",
    "profile": "switch params.yaml to a named profile (demo, paper, ckplus48, fer2013)",
    "serve": "serve the scheduled Prefect deployment (pull, each stale DVC stage a task, push)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer-pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    entries = [("stages", n, h) for n, h in STAGES.items()] + [("commands", n, h) for n, h in COMMANDS.items()]
    for folder, name, help_text in entries:
        module = importlib.import_module(f"pipeline.{folder}.{name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipeline.core.device import DeviceError
    from pipeline.core.schema import ParamsError

    args = build_parser().parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except (ParamsError, DeviceError) as exc:  # a mistake in params.yaml or --device: one line, no traceback
        print(f"fer-pipeline {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a transient I/O error exits 75 so the scheduled rebuild retries the stage
        from pipeline.runner.flows import is_transient
        from pipeline.runner.stage_task import EX_TEMPFAIL

        if not is_transient(exc):
            raise
        print(f"fer-pipeline {args.command}: transient error (a retry may succeed): {exc}", file=sys.stderr)
        return EX_TEMPFAIL


if __name__ == "__main__":
    sys.exit(main())
