"""Atomic writes: all or nothing, and no temporary sibling of a killed run outlives the next write."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.core import atomic
from pipeline.core.atomic import atomic_path, write_text

ROOT = Path(__file__).resolve().parents[2]

#: a writer that starts writing each target (a directory), then waits for a line on stdin and,
#: given "kill", dies the way an OOM-killed or SIGKILLed stage does: without cleaning up
WRITER = """
import contextlib, os, signal, sys
from pipeline.core.atomic import atomic_path
with contextlib.ExitStack() as stack:
    for target in sys.argv[1:]:
        tmp = stack.enter_context(atomic_path(target))
        tmp.mkdir()
        (tmp / "half.bin").write_bytes(b"half written")
    print("writing", flush=True)
    if sys.stdin.readline().strip() == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
"""


def start_writer(*targets: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, *map(str, targets)], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "writing"
    return proc


def temps(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.name.endswith(".tmp")}


def test_success_renames_and_failure_leaves_the_old_target(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and temps(tmp_path) == set()
    with atomic_path(tmp_path / "dir") as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("a")
    assert (tmp_path / "dir" / "a").read_text() == "a" and temps(tmp_path) == set()


def test_a_killed_writers_temp_is_removed_by_the_next_write_of_its_destination(tmp_path):
    target, other, longer = tmp_path / "processed", tmp_path / "interim", tmp_path / "processed.v2"
    proc = start_writer(target, other, longer)
    proc.communicate("kill\n", timeout=60)
    assert proc.returncode == -9
    left = temps(tmp_path)
    assert len(left) == 3 and all(atomic.temp_state(tmp_path / n) == "stale" for n in left)

    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "done").write_text("ok")
    assert (target / "done").read_text() == "ok"
    remaining = temps(tmp_path)
    assert len(remaining) == 2 and not any(n.startswith(".processed.") and not n.startswith(".processed.v2.")
                                           for n in remaining)
    assert any(n.startswith(".interim.") for n in remaining)  # another destination's temp: untouched
    assert any(n.startswith(".processed.v2.") for n in remaining)  # a longer name sharing the prefix too
    write_text(other, "interim")
    assert len(temps(tmp_path)) == 1  # interim's own next write removes its leftover


def test_a_running_writers_temp_is_left_alone(tmp_path):
    target = tmp_path / "aligned"
    proc = start_writer(target)
    try:
        (ongoing,) = temps(tmp_path)
        assert atomic.temp_state(tmp_path / ongoing, "aligned") == "live"
        with atomic_path(target) as tmp:  # a concurrent writer of the same destination finishes first
            tmp.mkdir()
        assert ongoing in temps(tmp_path)
    finally:
        proc.communicate("finish\n", timeout=60)
    assert proc.returncode == 0 and temps(tmp_path) == set() and (target / "half.bin").is_file()


def test_temps_of_the_older_naming_or_another_host_are_removed_only_when_old(tmp_path):
    target = tmp_path / "interim"
    old = tmp_path / ".interim.k3j9x0a_.tmp"  # mkstemp's name before process ids: owner unknown
    fresh = tmp_path / ".interim.abcdefgh.tmp"
    remote = tmp_path / ".interim.000000-12.abcdefgh.tmp"  # another host's writer: cannot be asked
    unrelated = tmp_path / ".interim.junk.tmp"  # not a name atomic_path makes
    for path in (old, fresh, remote, unrelated):
        path.mkdir()
        (path / "part").write_text("x")
    if atomic._host() == "000000":
        pytest.skip("this host's tag collides with the test's 'other host'")
    stale = time.time() - atomic.STALE_AFTER_S - 60
    for path in (old, old / "part", remote, remote / "part"):
        os.utime(path, (stale, stale))
    write_text(target, "x")
    assert temps(tmp_path) == {fresh.name, unrelated.name}
