"""The scheduled rebuild flow: ``dvc pull`` (with a remote), ``dvc repro``, ``dvc push`` (with a remote).

Served on a cron schedule by ``fer-pipeline serve`` (pipeline/commands/serve.py); importable as the
deployment's entrypoint ``pipeline.runner.rebuild.rebuild``. Each step is a Prefect task whose state and
log lines report its outcome:

* ``dvc-pull`` — ``dvc pull --allow-missing`` from the default remote, so a team's results are
  fetched rather than recomputed; retried with exponential back-off (network). Skipped (state
  Completed, result ``"skipped: no DVC remote"``) when the repository has no default remote.
* ``dvc-repro`` — not retried: a failing stage would fail the same way again. The stages' own
  flows report to the same Prefect API (``PREFECT_API_URL`` is passed down to them).
* ``dvc-push`` — like pull, to the default remote.

The flow never commits: when ``dvc.lock`` changed it says so; commit it to publish the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline.runner import flows  # sets Prefect's env defaults before prefect is imported

from prefect import flow, task  # noqa: E402
from prefect.logging import get_run_logger  # noqa: E402
from prefect.tasks import exponential_backoff  # noqa: E402

NETWORK_RETRIES = 3
NETWORK_RETRY_DELAY_SECONDS = 10.0
SKIPPED = "skipped: no DVC remote"


class DvcCommandError(RuntimeError):
    """A ``dvc`` command exited non-zero (message: the command, exit code and the output's tail)."""


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with this interpreter's bin directory first on PATH.

    So ``dvc`` and the stages' ``fer-pipeline`` are the ones installed beside this Python even when
    the virtual environment is not activated (cron, a service, ``.venv/bin/fer-pipeline serve``).
    """
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, **(extra or {})}


def dvc(*args: str, repo: str | os.PathLike, env: dict[str, str] | None = None) -> str:
    """Run ``dvc <args>`` in ``repo``, log its output line by line, return it.

    Raises:
        DvcCommandError: on a non-zero exit, with the last lines of the output.
    """
    logger = get_run_logger()
    cmd = ["dvc", *args]
    logger.info("$ %s  (in %s)", " ".join(cmd), repo)
    proc = subprocess.run(cmd, cwd=repo, env=tool_env(env), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in proc.stdout.splitlines():
        if line.strip():
            logger.info("%s", line)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-10:])
        raise DvcCommandError(f"`{' '.join(cmd)}` in {repo} exited {proc.returncode}:\n{tail}")
    return proc.stdout


def default_remote(repo: str | os.PathLike) -> str | None:
    """The repository's default DVC remote, or None when none is configured."""
    proc = subprocess.run(["dvc", "remote", "default"], cwd=repo, env=tool_env(), text=True,
                          capture_output=True)
    name = proc.stdout.strip()
    return name if proc.returncode == 0 and name else None


@task(name="dvc-pull", persist_result=False)
def pull(repo: str, remote: str | None) -> str:
    """``dvc pull --allow-missing`` from the default remote (skipped without one)."""
    if remote is None:
        get_run_logger().info("pull %s", SKIPPED)
        return SKIPPED
    dvc("pull", "--allow-missing", repo=repo)
    return f"pulled from {remote}"


@task(name="dvc-repro", retries=0, persist_result=False)
def repro(repo: str, api_url: str | None) -> str:
    """``dvc repro``; the stages' own flows report to ``api_url``. Returns how many stages ran."""
    out = dvc("repro", repo=repo, env={"PREFECT_API_URL": api_url} if api_url else None)
    ran = sum(1 for line in out.splitlines() if line.startswith("Running stage"))
    return f"{ran} stage(s) ran"


@task(name="dvc-push", persist_result=False)
def push(repo: str, remote: str | None) -> str:
    """``dvc push`` to the default remote (skipped without one)."""
    if remote is None:
        get_run_logger().info("push %s", SKIPPED)
        return SKIPPED
    dvc("push", repo=repo)
    return f"pushed to {remote}"


@flow(name="fer-pipeline-rebuild", persist_result=False)
def rebuild(repo: str = ".", network_retries: int = NETWORK_RETRIES,
            retry_delay_seconds: float = NETWORK_RETRY_DELAY_SECONDS) -> dict[str, str]:
    """Pull (with a remote), repro, push (with a remote) in the DVC repository ``repo``.

    Args:
        repo: the DVC repository (a git checkout).
        network_retries: retries of pull and push.
        retry_delay_seconds: first back-off of pull and push retries; doubled on each retry.
    """
    logger = get_run_logger()
    network = {"retries": network_retries,
               "retry_delay_seconds": exponential_backoff(backoff_factor=retry_delay_seconds)}
    repo = str(Path(repo).resolve())
    remote = default_remote(repo)
    logger.info("rebuilding %s (default DVC remote: %s)", repo, remote or "none")
    with flows.shared_api() as api_url:
        outcome = {"pull": pull.with_options(**network)(repo, remote)}
        outcome["repro"] = repro(repo, api_url)
        outcome["push"] = push.with_options(**network)(repo, remote)
    changed = subprocess.run(["git", "status", "--porcelain", "--", "dvc.lock"], cwd=repo, text=True,
                             capture_output=True).stdout.strip()
    if changed:
        logger.info("dvc.lock changed: commit it (git commit dvc.lock; git push) to publish this run")
    logger.info("rebuild done: %s", outcome)
    return outcome
