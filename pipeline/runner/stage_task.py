"""One DVC stage as one Prefect task: ``dvc repro --single-item <stage>``, its outcome and its log.

DVC stays the single source of caching and locking: the task never runs a stage's command
itself, it asks DVC to reproduce that one stage, and DVC decides whether to run it, check its
outputs out of the run-cache, or skip it. The task's final state says which:

==============================  ==========================================================
state (type / name)             when
==============================  ==========================================================
Completed / ``Completed``       DVC ran the stage's command (or re-verified a data source)
Completed / ``Cached``          DVC restored the outputs from its run-cache
Completed / ``Skipped``         up to date: nothing it depends on changed (no DVC call when
                                ``dvc status`` said so before the run and nothing upstream ran)
Failed                          the stage failed (after retries when the failure is transient)
Cancelled / ``NotRun``          a stage it depends on failed or was not run
==============================  ==========================================================

The DVC output is streamed into the task's log line by line while the stage runs.

Retries: only for transient failures. A stage command exits with :data:`EX_TEMPFAIL` (75,
sysexits.h's "temporary failure") when it failed on a transient I/O error (``fer-pipeline``
maps those, see :func:`pipeline.runner.flows.is_transient`); DVC failing to take its repository
lock is transient too. Anything else (bad input, a bug) fails at once: a retry would give the
same answer.

Concurrency: DVC releases its repository lock while a stage's command runs (``dvc/stage/run.py``,
``unlocked_repo``) and holds per-path read/write locks on the stage's deps and outs instead, so
two independent stages can run at once in one checkout; ``--wait-for-lock`` makes the short
bookkeeping steps (hashing outputs, writing dvc.lock) queue instead of failing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

EX_TEMPFAIL = 75  # sysexits.h: a temporary failure; the caller may retry

#: outcome of a stage in this run -> the task's state name
RAN, CACHED, SKIPPED, FAILED, NOT_RUN = "Completed", "Cached", "Skipped", "Failed", "NotRun"
#: outcomes after which the stage's outputs are in place (dependants may run)
SUCCEEDED = (RAN, CACHED, SKIPPED)

#: environment of the stage process: where its chunk flows attach as subflows (pipeline.runner.flows)
PARENT_FLOW_RUN_ENV = "FER_PIPELINE_PARENT_FLOW_RUN_ID"
PARENT_TASK_RUN_ENV = "FER_PIPELINE_PARENT_TASK_RUN_ID"

_EXIT = re.compile(r"exited with (-?\d+)")
_LOCK_BUSY = "Unable to acquire lock"
_TAIL_LINES = 15


class StageFailed(RuntimeError):
    """``dvc repro`` of one stage failed. ``transient``: worth a retry; ``seconds``: time spent."""

    def __init__(self, stage: str, message: str, *, transient: bool, seconds: float):
        super().__init__(message)
        self.stage, self.transient, self.seconds = stage, transient, seconds


class StageResult:
    """What one stage did in this run (the data of its task's final state).

    A plain class, not a dataclass: Prefect looks inside dataclasses passed to a task and would
    take their shared strings (``"Skipped"``) for other tasks' results, drawing false edges in
    the run's graph (see ``after`` in :func:`run_stage`).
    """

    __slots__ = ("stage", "outcome", "seconds", "note", "__weakref__")

    def __init__(self, stage: str, outcome: str, seconds: float, note: str):
        self.stage, self.outcome, self.seconds, self.note = stage, outcome, seconds, note  # outcome: RAN...NOT_RUN

    def __repr__(self) -> str:
        return f"StageResult({self.stage!r}, {self.outcome!r}, {self.seconds:.1f}, {self.note!r})"


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with this interpreter's bin directory first on PATH.

    So ``dvc`` and the stages' ``fer-pipeline`` are the ones installed beside this Python even when
    the virtual environment is not activated (cron, a service, ``.venv/bin/fer-pipeline serve``).
    """
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, **(extra or {})}


def outcome_of(output: str) -> str:
    """What ``dvc repro --single-item`` did, from its output: RAN, CACHED or SKIPPED."""
    if "is cached - skipping run" in output:
        return CACHED
    if "Running stage" in output or "Verifying data sources" in output:
        return RAN
    return SKIPPED  # "Stage 'x' didn't change, skipping"


def is_transient_failure(output: str) -> bool:
    """Whether a failed ``dvc repro``'s output shows a transient failure (see the module doc)."""
    codes = {int(c) for c in _EXIT.findall(output)}
    return EX_TEMPFAIL in codes or _LOCK_BUSY in output


def reproduce(repo: str | Path, stage: str, *, env: dict[str, str] | None = None,
              log: Any = None) -> str:
    """``dvc --wait-for-lock repro --single-item <stage>`` in ``repo``; returns RAN, CACHED or SKIPPED.

    Each output line goes to ``log.info`` as it comes (a stage can run for hours).

    Raises:
        StageFailed: on a non-zero exit, with the output's last lines.
    """
    cmd = ["dvc", "--wait-for-lock", "repro", "--single-item", stage]
    start = time.monotonic()
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    lines: list[str] = []
    if log is not None:
        log.info("$ %s  (in %s)", " ".join(cmd), repo)
    with subprocess.Popen(cmd, cwd=repo, env=tool_env(env), text=True, bufsize=1,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if line.strip():
                tail.append(line)
                if log is not None:
                    log.info("%s", line)
        code = proc.wait()
    output = "\n".join(lines)
    if code != 0:
        raise StageFailed(stage, f"dvc repro {stage} exited {code}:\n" + "\n".join(tail),
                          transient=is_transient_failure(output), seconds=time.monotonic() - start)
    return outcome_of(output)


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn`` of the stage task: retry transient failures only."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            state.result()
        except BaseException as raised:  # noqa: BLE001 - the stage's own failure, inspected
            exc = raised
    return isinstance(exc, StageFailed) and exc.transient


def run_stage(repo: str, stage: str, stale: bool, blocked_by: tuple[str, ...] = (),
              api_url: str | None = None, after: tuple[StageResult, ...] = ()) -> Any:
    """The body of the stage task; returns the final state (see the module's table).

    Args:
        repo: the DVC repository.
        stage: its DVC name (``align@jaffe``).
        stale: ``dvc status`` listed it before the run, or a stage it depends on ran since; when
            false the stage is up to date and DVC is not called.
        blocked_by: stages it depends on that failed or were not run: it is not run either.
        api_url: the Prefect API the stage's own chunk flows report to.
        after: the results of the stages it depends on; unused here, but passing them makes
            Prefect record the dependencies, so the UI draws DVC's graph.
    """
    from prefect.logging import get_run_logger
    from prefect.runtime import flow_run, task_run
    from prefect.states import Cancelled, Completed

    log = get_run_logger()
    if blocked_by:
        note = f"not run: {', '.join(blocked_by)} did not complete"
        log.warning("%s %s", stage, note)
        return Cancelled(name=NOT_RUN, message=note, data=StageResult(stage, NOT_RUN, 0.0, note))
    if not stale:
        note = "up to date"
        log.info("%s is %s (dvc status)", stage, note)
        return Completed(name=SKIPPED, message=note, data=StageResult(stage, SKIPPED, 0.0, note))
    env = {PARENT_FLOW_RUN_ENV: str(flow_run.id), PARENT_TASK_RUN_ENV: str(task_run.id)}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    start = time.monotonic()
    outcome = reproduce(repo, stage, env=env, log=log)
    seconds = time.monotonic() - start
    note = {RAN: "ran", CACHED: "outputs restored from DVC's run-cache", SKIPPED: "up to date"}[outcome]
    return Completed(name=outcome, message=note, data=StageResult(stage, outcome, seconds, note))


def call_as_stage_subflow(chunk_flow: Any) -> Any:
    """Call the Prefect flow ``chunk_flow``: as a subflow of its stage's task when there is one.

    Inside the rebuild flow a stage's command runs in its own process (``dvc repro`` starts it),
    where Prefect cannot see the stage's task. :func:`run_stage` passes the rebuild's flow run
    and the stage's task run down in the environment; here the chunk flow's run is created the
    way Prefect creates a subflow run inside a task: a tracking task run in the parent flow run,
    nested in the stage's task run (``__parents__``), and the flow run hanging from it. The UI
    then draws the chunk flow inside the stage's task; the server keeps the tracking task's
    state in step with the flow run. Without that environment (``dvc repro`` by hand, a stage
    run directly), or when the parent cannot be reached, the flow runs on its own as before.
    """
    parent_flow_run, parent_task_run = os.environ.get(PARENT_FLOW_RUN_ENV), os.environ.get(PARENT_TASK_RUN_ENV)
    from prefect.context import FlowRunContext

    if not (parent_flow_run and parent_task_run) or FlowRunContext.get() is not None:
        return chunk_flow()
    import logging
    import uuid

    from prefect import Task, get_client
    from prefect.client.schemas.objects import TaskRunResult
    from prefect.flow_engine import run_flow
    from prefect.states import Pending

    try:
        with get_client(sync_client=True) as client:
            tracker = client.create_task_run(
                task=Task(name=chunk_flow.name, fn=chunk_flow.fn),
                flow_run_id=uuid.UUID(parent_flow_run),
                dynamic_key=uuid.uuid4().hex,
                name=chunk_flow.name,
                state=Pending(),
                task_inputs={"__parents__": [TaskRunResult(id=uuid.UUID(parent_task_run))]},
            )
            flow_run = client.create_flow_run(chunk_flow, parent_task_run_id=tracker.id, state=Pending())
    except Exception as exc:  # noqa: BLE001 - observability never stops a stage
        logging.getLogger(__name__).warning("could not attach %s to its stage's task (%s): running it on its own",
                                            chunk_flow.name, exc)
        return chunk_flow()
    return run_flow(chunk_flow, flow_run=flow_run)
