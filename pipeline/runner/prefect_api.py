"""Run a command with one Prefect API shared by every process it starts.

    python -m pipeline.runner.prefect_api dvc repro

Every data stage runs its chunks as Prefect flows. Without ``PREFECT_API_URL`` each stage process
would start (and stop) a temporary Prefect server of its own, several seconds per stage. Here one
temporary server (:func:`pipeline.runner.flows.shared_api`) serves the whole command: its URL is
put in the environment the command inherits. A configured ``PREFECT_API_URL`` (your own server or
Prefect Cloud) is used as it is. ``make repro`` runs ``dvc repro`` this way.
"""

from __future__ import annotations

import subprocess
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m pipeline.runner.prefect_api COMMAND [ARG...]", file=sys.stderr)
        return 2
    from pipeline.runner.flows import shared_api

    with shared_api() as url:
        print(f"Prefect API for this run: {url}", file=sys.stderr, flush=True)
        return subprocess.call(argv)


if __name__ == "__main__":
    sys.exit(main())
