"""``fer-pipeline serve --cron "0 3 * * *"``: serve the scheduled rebuild as a Prefect deployment.

The deployment runs the flow :func:`pipeline.runner.rebuild.rebuild` (``dvc pull`` when a DVC remote is
set, ``dvc repro``, ``dvc push`` when a remote is set; each step a task with its state and log
lines) in ``--repo`` on the cron schedule. ``serve`` is a long-running process: Ctrl-C stops it
and pauses the schedule. ``--now`` runs the flow once in this process instead (from cron, CI or a
terminal). With no ``PREFECT_API_URL`` set, Prefect starts a temporary local server for the
lifetime of the process; set it to a ``prefect server start`` to keep the run history and UI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEPLOYMENT = "nightly"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cron", default="0 3 * * *", help='cron schedule (default: "0 3 * * *", daily 03:00)')
    parser.add_argument("--timezone", default="UTC", help="timezone of the cron schedule (default: UTC)")
    parser.add_argument("--name", default=DEPLOYMENT, help=f"deployment name (default: {DEPLOYMENT})")
    parser.add_argument("--repo", default=".", type=Path, help="the DVC repository to rebuild (default: .)")
    parser.add_argument("--now", action="store_true", help="run the flow once now instead of serving")


def serve(name: str, cron: str, timezone: str, repo: Path) -> None:
    """Serve the rebuild flow as deployment ``name`` on ``cron`` (blocks until stopped)."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from pipeline.runner.rebuild import rebuild

    rebuild.serve(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        parameters={"repo": str(repo.resolve())},
        entrypoint_type=EntrypointType.MODULE_PATH,  # pipeline.runner.rebuild.rebuild: cwd-independent
    )


def run(args: argparse.Namespace) -> int:
    if args.now:
        from pipeline.runner.rebuild import rebuild

        print(rebuild(repo=str(args.repo)))  # a failed step raises: non-zero exit
        return 0
    serve(args.name, args.cron, args.timezone, args.repo)
    return 0
