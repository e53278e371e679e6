"""pipeline.runner.flows: chunks as Prefect tasks, runners, ordering, retries (under a test server)."""

from __future__ import annotations

import errno
import hashlib
import time
from functools import partial
from pathlib import Path

import pytest

from pipeline.runner import flows

pytestmark = pytest.mark.usefixtures("prefect_harness")

THREADS = {"kind": "threads", "max_workers": 2}
DASK2 = {"kind": "dask", "n_workers": 2}


def digest_chunk(chunk: list[int], *, salt: str) -> list[str]:
    """Deterministic work with real content: a hash per item."""
    return [hashlib.sha256(f"{salt}:{x}".encode()).hexdigest()[:12] for x in chunk]


def slow_reversed(chunk: list[int]) -> list[int]:
    """Earlier chunks take longer, so they finish last."""
    time.sleep(0.05 * (5 - chunk[0]))
    return chunk


def flaky(chunk: list[int], *, counter_dir: str, exc: BaseException, failures: int) -> int:
    """Fail ``failures`` times per chunk with ``exc`` (attempts counted in files), then succeed."""
    marker = Path(counter_dir) / f"chunk-{chunk[0]}"
    attempts = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempts))
    if attempts <= failures:
        raise exc
    return sum(chunk)


def attempts(counter_dir: Path) -> dict[str, int]:
    return {p.name: int(p.read_text()) for p in sorted(counter_dir.iterdir())}


def test_fixed_windows_read_lazily():
    assert list(flows.fixed_windows(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(flows.fixed_windows([], 3)) == []
    with pytest.raises(ValueError, match="window size"):
        next(flows.fixed_windows([1], 0))

    def endless():
        n = 0
        while True:
            yield n
            n += 1

    assert next(flows.fixed_windows(endless(), 2)) == [0, 1]  # never reads past the window


def test_window_runner_in_process_equals_the_function_over_the_chunks():
    fn = partial(digest_chunk, salt="w")
    chunks = [[1, 2], [3]]
    assert flows.window_runner("unused", prefect=False)(fn, chunks) == [fn(c) for c in chunks]


@pytest.mark.parametrize("exc,expected", [
    (OSError(errno.EIO, "I/O error"), True),
    (TimeoutError("slow share"), True),
    (ConnectionResetError("reset"), True),
    (BlockingIOError(errno.EAGAIN, "again"), True),
    (FileNotFoundError(errno.ENOENT, "missing", "a.png"), False),
    (PermissionError(errno.EACCES, "denied"), False),
    (IsADirectoryError(errno.EISDIR, "dir"), False),
    (ValueError("data/raw/x.png: not an image"), False),
    (None, False),
])
def test_is_transient(exc, expected):
    assert flows.is_transient(exc) is expected


def test_threads_and_dask_give_identical_results():
    chunks = list(flows.fixed_windows(range(23), 4))
    fn = partial(digest_chunk, salt="fer")
    expected = [fn(c) for c in chunks]
    threads = flows.run_chunks("test-threads", fn, chunks, runner=THREADS, retries=0)
    dask = flows.run_chunks("test-dask", fn, chunks, runner=DASK2, retries=0)
    assert threads == expected
    assert dask == expected


def test_results_in_chunk_order_not_completion_order():
    chunks = [[i] for i in range(5)]
    assert flows.run_chunks("test-order", slow_reversed, chunks, runner=THREADS, retries=0) == chunks


def test_transient_oserror_is_retried(tmp_path):
    fn = partial(flaky, counter_dir=str(tmp_path), exc=OSError(errno.EIO, "flaky NFS"), failures=1)
    out = flows.run_chunks("test-retry", fn, [[1, 2], [3]], runner=THREADS, retries=2,
                                   retry_delay_seconds=0.01)
    assert out == [3, 3]
    assert attempts(tmp_path) == {"chunk-1": 2, "chunk-3": 2}


def test_retries_exhausted_raise_the_error(tmp_path):
    fn = partial(flaky, counter_dir=str(tmp_path), exc=TimeoutError("share gone"), failures=5)
    with pytest.raises(TimeoutError, match="share gone"):
        flows.run_chunks("test-exhausted", fn, [[7]], runner=THREADS, retries=2,
                                 retry_delay_seconds=0.01)
    assert attempts(tmp_path) == {"chunk-7": 3}


@pytest.mark.parametrize("exc", [ValueError("data/raw/jaffe/KA.XX1.tiff: unknown label"),
                                 FileNotFoundError(errno.ENOENT, "No such file", "a.png")])
def test_bad_input_is_not_retried(tmp_path, exc):
    fn = partial(flaky, counter_dir=str(tmp_path), exc=exc, failures=5)
    with pytest.raises(type(exc)):
        flows.run_chunks("test-bad-input", fn, [[1]], runner=THREADS, retries=3,
                                 retry_delay_seconds=0.01)
    assert attempts(tmp_path) == {"chunk-1": 1}


def test_runs_as_subflow_inside_callers_flow():
    from prefect import flow

    @flow(name="test-parent")
    def parent() -> list[list[str]]:
        return flows.run_chunks("test-child", partial(digest_chunk, salt="p"), [[1], [2]],
                                        runner=THREADS, retries=0)

    assert parent() == [digest_chunk([1], salt="p"), digest_chunk([2], salt="p")]


def test_runner_settings_from_params(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(
        "flow:\n  runner: {kind: dask, n_workers: 3}\n  retries: 4\n")
    monkeypatch.chdir(tmp_path)
    s = flows.flow_settings()
    assert s["runner"] == {"kind": "dask", "max_workers": 2, "address": None, "n_workers": 3}
    assert s["retries"] == 4
    assert s["retry_delay_seconds"] == flows.DEFAULT_RETRY_DELAY_SECONDS
    with pytest.raises(ValueError, match="threads' or 'dask'"):
        flows.make_task_runner({"kind": "ray"})
