"""``fer-pipeline serve --cron "0 3 * * *"``: serve the scheduled rebuild as a Prefect deployment.

The deployment runs the flow :func:`pipeline.runner.rebuild.rebuild` in ``--repo`` on the cron
schedule: ``dvc pull`` (with a DVC remote), every stale DVC stage as its own task, artifacts
(results table, per-dataset accounting, commit link), ``dvc push``. ``--param key=value`` sets the
deployment's parameters (``profile``, ``targets``, ``push``, ``webhook_url``,
``max_parallel_stages``, ...; values are read as YAML: ``push=false``, ``targets=align@*,report``).
``serve`` is a long-running process: Ctrl-C stops it and pauses the schedule. ``--now`` runs the
flow once in this process instead (from cron, CI or a terminal; exit 1 when it failed). With no
``PREFECT_API_URL`` set, Prefect starts a temporary local server for the lifetime of the process;
set it to a ``prefect server start`` to keep the run history and UI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEPLOYMENT = "nightly"


class ParamError(ValueError):
    """A ``--param`` that is malformed, unknown or of the wrong type (one-line message)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cron", default="0 3 * * *", help='cron schedule (default: "0 3 * * *", daily 03:00)')
    parser.add_argument("--timezone", default="UTC", help="timezone of the cron schedule (default: UTC)")
    parser.add_argument("--name", default=DEPLOYMENT, help=f"deployment name (default: {DEPLOYMENT})")
    parser.add_argument("--repo", default=".", type=Path, help="the DVC repository to rebuild (default: .)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter of the rebuild flow (repeatable): profile=paper, targets=align@*,report, "
                             "push=false, webhook_url=https://..., max_parallel_stages=2")
    parser.add_argument("--now", action="store_true", help="run the flow once now instead of serving")


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["push=false", "targets=align@*"]`` -> ``{"push": False, "targets": "align@*"}``, checked
    against the rebuild flow's parameters (names and types).

    Raises:
        ParamError: a pair without ``=``, a name the flow does not take, or a value of the wrong type.
    """
    import typing

    import pydantic
    import yaml

    from pipeline.runner.rebuild import rebuild

    known = rebuild.parameters.properties
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamError(f"--param {pair!r}: expected KEY=VALUE")
        if key == "repo":
            raise ParamError("--param repo: use --repo")
        if key not in known:
            raise ParamError(f"--param {key}: unknown parameter (known: {', '.join(k for k in known if k != 'repo')})")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw  # e.g. "align@*": '@' may not start a YAML scalar; it is a plain string
        if not isinstance(value, (str, int, float, bool, list, dict, type(None))):
            value = raw  # a YAML date or the like: keep the text
        params[key] = value
    hints = typing.get_type_hints(rebuild.fn)
    for key, value in params.items():
        try:
            params[key] = pydantic.TypeAdapter(hints[key]).validate_python(value)
        except pydantic.ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise ParamError(f"--param {key}={value!r}: {problem}") from None
    return params


def serve(name: str, cron: str, timezone: str, repo: Path, params: dict[str, Any]) -> None:
    """Serve the rebuild flow as deployment ``name`` on ``cron`` (blocks until stopped)."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from pipeline.runner.rebuild import rebuild

    rebuild.serve(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        parameters={"repo": str(repo.resolve()), **params},
        entrypoint_type=EntrypointType.MODULE_PATH,  # pipeline.runner.rebuild.rebuild: cwd-independent
    )


def run(args: argparse.Namespace) -> int:
    try:
        params = parse_params(args.param)
    except ParamError as exc:
        print(f"fer-pipeline serve: error: {exc}", file=sys.stderr)
        return 2
    if args.now:
        from pipeline.runner.rebuild import rebuild

        state = rebuild(repo=str(args.repo), return_state=True, **params)
        if not state.is_completed():
            print(f"fer-pipeline serve: rebuild {state.name}: {' '.join(str(state.message).split())}", file=sys.stderr)
            return 1
        print(state.result())
        return 0
    serve(args.name, args.cron, args.timezone, args.repo, params)
    return 0
