"""The scheduled rebuild flow: every DVC stage a Prefect task, results as Prefect artifacts.

Served on a cron schedule by ``fer-pipeline serve`` (pipeline/commands/serve.py); importable as the
deployment's entrypoint ``pipeline.runner.rebuild.rebuild``. One run, in the flow run's order:

1. ``dvc-pull`` — ``dvc pull --allow-missing`` from the default remote, so the team's results are
   fetched rather than recomputed; retried with exponential back-off (network). Skipped without
   a default remote.
2. ``apply-profile`` (parameter ``profile``) — ``fer-pipeline profile <name>``.
3. The pipeline's graph, read from DVC (:mod:`pipeline.runner.dvc_graph`), cut to ``targets``
   (stage names or globs, plus what they depend on, as ``dvc repro <target>``), and ``dvc
   status``: which stages are stale now.
4. One task run per stage, named after it (:mod:`pipeline.runner.stage_task`), each calling
   ``dvc repro --single-item <stage>``, in dependency order: a stage starts once every stage
   it depends on has finished. Up-to-date stages end ``Skipped`` (without a DVC call when
   nothing upstream ran), run-cache hits ``Cached``. A failed stage (retried first when the
   failure is transient) stops its dependants only — they end ``NotRun`` — and the rest of
   the graph goes on. The stages' own chunk flows appear as subflows inside their stage's task.
5. Artifacts (:mod:`pipeline.runner.artifacts`): the stages table, ``reports/results.md``, the
   per-dataset accounting and detection rates, a link to the commit.
6. ``dvc-push`` (parameter ``push``) — like pull, to the default remote; also after a failed
   stage, so what did complete is shared.

The run fails when a stage, pull or push failed; then the failure hook POSTs a JSON summary to
``webhook_url`` (:mod:`pipeline.runner.webhook`). The flow never commits: when ``dvc.lock``
changed it says so; commit it to publish the run.

Stages at once (``max_parallel_stages``, default 1): DVC lets independent stages of one checkout
run concurrently (:mod:`pipeline.runner.stage_task`), but every data stage already spreads its
chunks over ``flow.runner``'s workers (2 on the demo machine's 2 cores), so a second stage
mostly competes for the same cores; raise it on a machine with more cores than one stage uses.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from pipeline.runner import flows  # sets Prefect's env defaults before prefect is imported
from pipeline.runner import artifacts
from pipeline.runner.dvc_graph import StageGraph, read_graph, stale_stages
from pipeline.runner.stage_task import (CACHED, FAILED, NOT_RUN, RAN, SUCCEEDED, StageFailed, StageResult,
                                        retry_if_transient, run_stage, tool_env)
from pipeline.runner.webhook import notify_failure

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.logging import get_run_logger  # noqa: E402
from prefect.states import Failed  # noqa: E402
from prefect.tasks import exponential_backoff  # noqa: E402

NETWORK_RETRIES = 3
STAGE_RETRIES = 2
RETRY_DELAY_SECONDS = 10.0
SKIPPED_NO_REMOTE = "skipped: no DVC remote"
SKIPPED_BY_PARAMETER = "skipped: push=false"


class DvcCommandError(RuntimeError):
    """A ``dvc`` command exited non-zero (message: the command, exit code and the output's tail)."""


def dvc(*args: str, repo: str | os.PathLike) -> str:
    """Run ``dvc <args>`` in ``repo``, log its output line by line, return it.

    Raises:
        DvcCommandError: on a non-zero exit, with the last lines of the output.
    """
    logger = get_run_logger()
    cmd = ["dvc", *args]
    logger.info("$ %s  (in %s)", " ".join(cmd), repo)
    proc = subprocess.run(cmd, cwd=repo, env=tool_env(), text=True,
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


@task(name="dvc-pull", persist_result=False, cache_policy=NO_CACHE)
def pull_task(repo: str, remote: str | None) -> str:
    """``dvc pull --allow-missing`` from the default remote (skipped without one)."""
    if remote is None:
        get_run_logger().info("pull %s", SKIPPED_NO_REMOTE)
        return SKIPPED_NO_REMOTE
    dvc("pull", "--allow-missing", repo=repo)
    return f"pulled from {remote}"


@task(name="dvc-push", persist_result=False, cache_policy=NO_CACHE)
def push_task(repo: str, remote: str | None) -> str:
    """``dvc push`` to the default remote (skipped without one)."""
    if remote is None:
        get_run_logger().info("push %s", SKIPPED_NO_REMOTE)
        return SKIPPED_NO_REMOTE
    dvc("push", repo=repo)
    return f"pushed to {remote}"


@task(name="apply-profile", persist_result=False, cache_policy=NO_CACHE)
def apply_profile(repo: str, name: str) -> str:
    """``fer-pipeline profile <name>``: params.yaml := that profile (refuses a hand-edited one)."""
    proc = subprocess.run(["fer-pipeline", "profile", name], cwd=repo, env=tool_env(), text=True,
                          capture_output=True)
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.strip():
            get_run_logger().info("%s", line)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exited {proc.returncode}"])[-1]
        raise RuntimeError(last)
    return f"profile {name}"


stage = task(run_stage, name="dvc-stage", persist_result=False, cache_policy=NO_CACHE,
             retry_condition_fn=retry_if_transient, tags=["dvc-stage"])


def parse_targets(targets: list[str] | str | None) -> list[str] | None:
    """``targets`` as a list: a string is comma-separated (``"align@*,report"``); empty is None."""
    if isinstance(targets, str):
        targets = [t for t in (part.strip() for part in targets.split(",")) if t]
    return list(targets) if targets else None


def _result_of(name: str, state: Any) -> StageResult:
    """The :class:`StageResult` of a finished stage task, from its final state."""
    data = state.result(raise_on_failure=False)
    if isinstance(data, StageResult):
        return data
    if isinstance(data, StageFailed):
        first = str(data).splitlines()[0]
        return StageResult(name, FAILED, data.seconds, first + (" (transient; retries exhausted)" if data.transient else ""))
    return StageResult(name, FAILED, 0.0, " ".join(str(state.message or data).split())[:300])


def run_graph(graph: StageGraph, stale: set[str], *, repo: str, api_url: str | None,
              max_parallel: int, retries: int, retry_delay_seconds: float) -> list[StageResult]:
    """Run every stage of ``graph`` as a task once all it depends on finished; at most
    ``max_parallel`` at once. Returns the results in ``graph.order``."""
    from prefect.futures import as_completed
    from prefect.utilities.engine import link_state_to_task_run_result

    options = {"retries": retries,
               "retry_delay_seconds": exponential_backoff(backoff_factor=retry_delay_seconds) if retries else 0}
    results: dict[str, StageResult] = {}
    running: dict[Any, str] = {}
    todo = list(graph.order)
    while todo or running:
        for name in list(todo):
            if len(running) >= max_parallel:
                break
            ups = graph.upstream[name]
            if any(u not in results for u in ups):
                continue
            todo.remove(name)
            blocked = tuple(u for u in ups if results[u].outcome not in SUCCEEDED)
            needed = name in stale or any(results[u].outcome in (RAN, CACHED) for u in ups)
            future = stage.with_options(task_run_name=name, **options).submit(
                repo, name, needed, blocked, api_url, after=tuple(results[u] for u in ups))
            running[future] = name
        done = next(iter(as_completed(list(running))))
        done.wait()  # sets the future's final state from the engine (the API's copy may lag)
        name = running.pop(done)
        results[name] = _result_of(name, done.state)
        # a stage's result passed to its dependants (``after``) records the DVC edge in Prefect,
        # which draws the run's graph from it: whatever the upstream state, unlike wait_for
        # (which refuses a Cancelled upstream) or futures (which Prefect would resolve)
        link_state_to_task_run_result(done.state, results[name])
    return [results[name] for name in graph.order]


@flow(name="fer-pipeline-rebuild", persist_result=False, on_failure=[notify_failure], on_crashed=[notify_failure])
def rebuild(repo: str = ".", profile: str | None = None, targets: list[str] | str | None = None,
            push: bool = True, webhook_url: str | None = None, max_parallel_stages: int = 1,
            stage_retries: int = STAGE_RETRIES, network_retries: int = NETWORK_RETRIES,
            retry_delay_seconds: float = RETRY_DELAY_SECONDS) -> Any:
    """Pull, apply a profile, reproduce the stale stages one task each, publish artifacts, push.

    Args:
        repo: the DVC repository (a git checkout).
        profile: switch params.yaml to this profile first (``fer-pipeline profile``); None: as is.
        targets: stage names or globs (a list, or one comma-separated string: ``"align@*,report"``)
            and everything they depend on; None: the whole pipeline.
        push: ``dvc push`` at the end (with a default remote).
        webhook_url: where the failure hook POSTs (None: ``$FER_PIPELINE_WEBHOOK_URL``, else no post).
        max_parallel_stages: independent stages running at once (see the module doc).
        stage_retries: retries of a stage after a transient failure.
        network_retries: retries of pull and push.
        retry_delay_seconds: first back-off of every retry; doubled on each retry.

    Returns:
        ``{"pull": ..., "stages": {stage: outcome}, "push": ...}``; a failed run's state carries
        the same plus ``failed`` and ``not_run``.
    """
    logger = get_run_logger()
    if max_parallel_stages < 1:
        raise ValueError(f"max_parallel_stages must be >= 1, got {max_parallel_stages}")
    network = {"retries": network_retries,
               "retry_delay_seconds": exponential_backoff(backoff_factor=retry_delay_seconds) if network_retries else 0}
    repo = str(Path(repo).resolve())
    remote = default_remote(repo)
    logger.info("rebuilding %s (default DVC remote: %s)", repo, remote or "none")
    summary: dict[str, Any] = {}
    with flows.shared_api() as api_url:
        summary["pull"] = pull_task.with_options(**network)(repo, remote)
        if profile:
            summary["profile"] = apply_profile(repo, profile)
        graph = read_graph(repo).select(parse_targets(targets))
        stale = set(stale_stages(repo, graph.order))
        logger.info("%d stage(s); stale now: %s", len(graph.order), ", ".join(s for s in graph.order if s in stale) or "none")
        results = run_graph(graph, stale, repo=repo, api_url=api_url, max_parallel=max_parallel_stages,
                            retries=stage_retries, retry_delay_seconds=retry_delay_seconds)
        artifacts.publish(Path(repo), results)
        push_state = None
        if push:
            push_state = push_task.with_options(**network)(repo, remote, return_state=True)
            summary["push"] = push_state.result(raise_on_failure=False) if push_state.is_completed() else "failed"
        else:
            summary["push"] = SKIPPED_BY_PARAMETER
    summary["stages"] = {r.stage: r.outcome for r in results}
    changed = subprocess.run(["git", "status", "--porcelain", "--", "dvc.lock"], cwd=repo, text=True,
                             capture_output=True).stdout.strip()
    if changed:
        logger.info("dvc.lock changed: commit it (git commit dvc.lock; git push) to publish this run")
    failed = [r.stage for r in results if r.outcome == FAILED]
    not_run = [r.stage for r in results if r.outcome == NOT_RUN]
    logger.info("rebuild done: %s", summary)
    problems = []
    if failed:
        problems.append(f"{len(failed)} stage(s) failed: {', '.join(failed)}")
    if not_run:
        problems.append(f"not run: {', '.join(not_run)}")
    if push_state is not None and not push_state.is_completed():
        problems.append(f"dvc push failed: {' '.join(str(push_state.message).split())}")
    if problems:
        return Failed(message="; ".join(problems), data={**summary, "failed": failed, "not_run": not_run})
    return summary
