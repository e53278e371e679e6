"""Run a stage's per-chunk work as Prefect tasks in a Prefect flow.

A stage's package cuts its inputs into chunks and hands them, a window of chunks at a time, to a
:data:`RunWindow`: a callable ``(fn, chunks) -> [fn(c) for c in chunks]``. There are two, and
every stage uses one of them (its ``--no-prefect`` flag chooses, :func:`window_runner`):

* :func:`in_process` runs the chunks one after the other in this process;
* :func:`run_chunks` builds a Prefect flow named after the stage (a subflow when called inside
  another flow, or inside its stage's task when the scheduled rebuild flow runs the stage:
  :func:`pipeline.runner.stage_task.call_as_stage_subflow`), submits one task per chunk to the
  task runner chosen in ``params.yaml`` (``flow.runner``) and returns the results **in chunk
  order**, whatever order they finished in.

How many chunks make a window is the package's choice (results of a window are held in memory):
:func:`fixed_windows` for a count (shard), a byte budget for ingest, all missing chunks at once
for align (whose chunks write their own resumable parts). Usage::

    from functools import partial
    from pipeline.runner.flows import fixed_windows, window_runner

    def align_chunk(rows: list[dict], *, cfg: dict) -> list[dict]:   # module level: picklable
        ...                                                          # pure: no shared state

    run_window = window_runner(f"align-{dataset}", prefect=True)
    for window in fixed_windows(chunks, 8):
        for part in run_window(partial(align_chunk, cfg=cfg), window):
            ...                                                      # then ONE atomic write

Rules for ``fn``: a module-level function (or a ``functools.partial`` of one) so that Dask
workers can unpickle it; deterministic given its chunk, so that the runner never changes the
output; no output files of its own — return the data and let the stage write its outputs once,
atomically (``pipeline.core.atomic``). Results travel back in memory: Prefect result persistence and
task caching are switched off, because DVC is the only cache of this project.

Runners (``flow.runner`` in params.yaml, or the ``runner`` argument)::

    flow:
      runner:
        kind: threads        # threads | dask
        max_workers: 2       # threads: size of the thread pool
        address: null        # dask: scheduler of an existing cluster ("tcp://host:8786")
        n_workers: 2         # dask without address: LocalCluster(n_workers, threads_per_worker=1)
      retries: 2             # per chunk, only for transient I/O errors
      retry_delay_seconds: 1 # first back-off; doubles on every retry

The runner only decides *where* chunks run, never *what* they compute, so dvc.yaml does not list
``flow`` among any stage's params: switching to a cluster re-runs nothing.

Retries: a chunk is retried (with exponential back-off) only when it failed with a transient
I/O error — an ``OSError`` other than the deterministic ones (missing file, permission, is/not a
directory) — or a ``TimeoutError``/``ConnectionError``. Bad input (``ValueError``, a reader's
error naming the file, ...) fails at once: retrying it would give the same answer.

Prefect itself: with no ``PREFECT_API_URL`` configured, Prefect 3 starts a temporary local server
for the duration of the process (a few seconds, no network needed) and keeps its state (a SQLite
database) under ``PREFECT_HOME`` — Prefect's default ``~/.prefect``, outside the repository, so
DVC-tracked directories stay clean. Set ``PREFECT_API_URL`` to a running server (``prefect
server start``) to see the runs in its UI and skip the start-up cost. This module also sets, unless
already set: Prefect's console log handler to stdout (``dvc repro`` shows the logs with the
stage's own output) and server analytics off (the sandbox has no network). Tests give every
session its own ``PREFECT_HOME`` (``prefect_test_harness`` or a temporary directory).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

C = TypeVar("C")
R = TypeVar("R")

#: runs a chunk function over one window of chunks, returning the results in chunk order
RunWindow = Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]

log = logging.getLogger(__name__)

# Prefect reads these when it is first imported; explicit settings of the user win.
_PREFECT_ENV_DEFAULTS = {
    "PREFECT_LOGGING_HANDLERS_CONSOLE_STREAM": "ext://sys.stdout",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "pipeline",
}
for _key, _value in _PREFECT_ENV_DEFAULTS.items():
    os.environ.setdefault(_key, _value)

DEFAULT_RUNNER: dict[str, Any] = {"kind": "threads", "max_workers": 2, "address": None, "n_workers": 2}
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY_SECONDS = 1.0

# OSErrors that say something about the input, not about the moment: never retried.
_DETERMINISTIC_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
_DETERMINISTIC_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EINVAL}


def is_transient(exc: BaseException | None) -> bool:
    """Whether retrying ``exc`` can help: a transient I/O error, not bad input.

    ``TimeoutError`` and ``ConnectionError`` are transient; other ``OSError`` s are transient
    unless they say the input itself is wrong (missing, not permitted, wrong kind of path).
    """
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    if not isinstance(exc, OSError) or isinstance(exc, _DETERMINISTIC_OS_ERRORS):
        return False
    return exc.errno not in _DETERMINISTIC_ERRNOS


def _retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure is transient (see above)."""
    exc = state.data if isinstance(state.data, BaseException) else None
    return is_transient(exc)


def flow_settings(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``flow`` section of params.yaml merged over the defaults (defaults when absent).

    Returns a dict with ``runner`` (dict), ``retries`` (int) and ``retry_delay_seconds``.
    """
    from pipeline.core import params as params_mod

    if params is None:
        try:
            params = params_mod.load()
        except FileNotFoundError:
            params = {}
    sec = params.get("flow") or {}
    return {
        "runner": {**DEFAULT_RUNNER, **(sec.get("runner") or {})},
        "retries": int(sec.get("retries", DEFAULT_RETRIES)),
        "retry_delay_seconds": float(sec.get("retry_delay_seconds", DEFAULT_RETRY_DELAY_SECONDS)),
    }


def make_task_runner(runner: dict[str, Any]) -> Any:
    """A Prefect task runner from a ``flow.runner`` mapping.

    ``kind: threads`` gives ``ThreadPoolTaskRunner(max_workers)``; ``kind: dask`` gives prefect-dask's
    ``DaskTaskRunner`` on the cluster at ``address`` or, without one, on a fresh
    ``distributed.LocalCluster`` of ``n_workers`` single-threaded worker processes (the models and
    MTCNN are not thread-safe and each worker should own one core).
    """
    kind = runner.get("kind", "threads")
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=int(runner.get("max_workers") or 1))
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if runner.get("address"):
            return DaskTaskRunner(address=runner["address"])
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={
                "n_workers": int(runner.get("n_workers") or 1),
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            },
        )
    raise ValueError(f"flow.runner.kind must be 'threads' or 'dask', got {kind!r}")


@contextlib.contextmanager
def shared_api() -> Iterator[str | None]:
    """Make the Prefect API explicit for the duration: the configured one, else a temporary server.

    Without ``PREFECT_API_URL`` every *process* would start its own temporary server, so each
    Dask worker would spend seconds starting one (and all would share one SQLite file). Here the
    parent starts the temporary server once (Prefect's own per-process singleton, the one its
    client would start anyway) and puts its URL in the settings that Prefect ships to the
    workers with every task, and in the environment of processes started meanwhile.
    Yields the API URL (``None`` never: a URL is always set inside).
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield PREFECT_API_URL.value()
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


def _call(fn: Callable[[C], R], chunk: C) -> R:
    """The body of every chunk task: ``fn(chunk)``."""
    return fn(chunk)


def run_chunks(name: str, fn: Callable[[C], R], chunks: Sequence[C], *,
               runner: dict[str, Any] | None = None, retries: int | None = None,
               retry_delay_seconds: float | None = None) -> list[R]:
    """Run ``fn`` over ``chunks`` as one Prefect task per chunk in a flow named ``name``.

    Args:
        name: flow name, by convention ``<stage>-<dataset>`` (``align-jaffe``).
        fn: work of one chunk; module-level (or a partial of one) so Dask can pickle it.
        chunks: the inputs, one task each.
        runner: a ``flow.runner`` mapping; ``None`` reads ``flow.runner`` from params.yaml.
        retries: retries of a chunk on transient I/O errors; ``None`` reads ``flow.retries``.
        retry_delay_seconds: first back-off delay, doubled each retry; ``None`` reads params.

    Returns:
        ``[fn(c) for c in chunks]``, in chunk order.

    Raises:
        The first chunk's exception (in chunk order) when any chunk failed for good.
    """
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.futures import wait
    from prefect.tasks import exponential_backoff

    settings = flow_settings() if runner is None or retries is None or retry_delay_seconds is None else {}
    runner = runner if runner is not None else settings["runner"]
    retries = retries if retries is not None else settings["retries"]
    delay = retry_delay_seconds if retry_delay_seconds is not None else settings["retry_delay_seconds"]
    chunks = list(chunks)

    chunk_task = task(
        _call,
        name=f"{name}-chunk",
        retries=retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=delay) if retries else 0,
        retry_condition_fn=_retry_on_transient,
        persist_result=False,
        cache_policy=NO_CACHE,
    )

    @flow(name=name, task_runner=make_task_runner(runner), persist_result=False,
          validate_parameters=False, log_prints=True)
    def chunk_flow() -> list[Any]:
        from prefect.logging import get_run_logger

        get_run_logger().info("%d chunk(s) on runner %s", len(chunks), runner.get("kind", "threads"))
        futures = [
            chunk_task.with_options(task_run_name=f"{name}-chunk-{i:05d}").submit(fn, chunk)
            for i, chunk in enumerate(chunks)
        ]
        wait(futures)
        return [f.result() for f in futures]

    from pipeline.runner.stage_task import call_as_stage_subflow

    with shared_api():
        return call_as_stage_subflow(chunk_flow)  # under the rebuild flow: inside its stage's task


def in_process(fn: Callable[[C], R], chunks: Sequence[C]) -> list[R]:
    """``[fn(c) for c in chunks]`` in this process: the :data:`RunWindow` of ``--no-prefect``."""
    return [fn(c) for c in chunks]


def window_runner(name: str, *, prefect: bool = True, runner: dict[str, Any] | None = None) -> RunWindow:
    """The :data:`RunWindow` of a stage: Prefect tasks in flow runs named ``name`` (``runner``: a
    ``flow.runner`` mapping, ``None`` reads params.yaml), or :func:`in_process` when not ``prefect``.
    Both give the same results, so the choice never changes an output."""
    return partial(run_chunks, name, runner=runner) if prefect else in_process


def fixed_windows(chunks: Iterable[C], size: int) -> Iterator[list[C]]:
    """``chunks`` in consecutive windows of ``size`` (the last may be shorter), read lazily."""
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    it = iter(chunks)
    while window := list(itertools.islice(it, size)):
        yield window
