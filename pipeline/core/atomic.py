"""Atomic outputs: a stage killed mid-write leaves either the old file or none, never half of one.

:func:`atomic_path` writes into a temporary sibling ``.<name>.<host>-<pid>.<random>.tmp`` of the
destination and renames it over the destination on success. A killed process cannot remove its
temporary sibling, so the next :func:`atomic_path` on the same destination does: it removes the
temporaries of that destination whose writer is gone (same host, process id no longer running),
and those of another host or of the older ``.<name>.<random>.tmp`` naming once nothing in them has
changed for :data:`STALE_AFTER_S` seconds. Temporaries of other destinations, and of writers still
running, are left alone.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

#: a temporary sibling whose writer cannot be asked (another host, or the older naming without a
#: process id) is stale once nothing in it changed for this long
STALE_AFTER_S = 24 * 3600

_RANDOM = r"[a-z0-9_]{8}"  # tempfile's random part
_OWNED = re.compile(rf"\.(?P<dest>.+)\.(?P<host>[0-9a-f]{{6}})-(?P<pid>[0-9]+)\.{_RANDOM}\.tmp")
_LEGACY = re.compile(rf"\.(?P<dest>.+)\.{_RANDOM}\.tmp")


@functools.lru_cache(maxsize=1)
def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _temp_prefix(name: str) -> str:
    return f".{name}.{_host()}-{os.getpid()}."


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie does not; unknown counts as running)."""
    if pid == os.getpid():
        return True
    if os.name != "posix" or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's process
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True


def _last_change(path: Path) -> float:
    """Newest mtime of ``path`` and, for a directory, of everything under it."""
    try:
        newest = path.lstat().st_mtime
    except OSError:
        return time.time()
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


def temp_state(path: str | os.PathLike, dest: str | None = None) -> str | None:
    """``"stale"``, ``"live"``, or ``None`` when ``path`` is not a temporary sibling (of ``dest``,
    a destination's file name, when given) as :func:`atomic_path` names them."""
    path = Path(path)
    owned = _OWNED.fullmatch(path.name)
    if owned and (dest is None or owned["dest"] == dest):
        if owned["host"] == _host():
            return "live" if _running(int(owned["pid"])) else "stale"
        return "stale" if time.time() - _last_change(path) > STALE_AFTER_S else "live"
    legacy = _LEGACY.fullmatch(path.name)
    if legacy and (dest is None or legacy["dest"] == dest):
        return "stale" if time.time() - _last_change(path) > STALE_AFTER_S else "live"
    return None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of ``target`` left by killed writers; return them."""
    target = Path(target)
    try:
        entries = list(target.parent.iterdir())
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        if entry.name.startswith(f".{target.name}.") and temp_state(entry, target.name) == "stale":
            _remove(entry)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    Works for files and directories. On an exception the temporary path is removed and
    ``target`` is left untouched. Temporary siblings of ``target`` left by killed runs are
    removed first (see the module doc).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target.name), suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists() or tmp_path.is_symlink():
            _remove(tmp_path)


def parts_dir(out: str | os.PathLike) -> Path:
    """``<out parent>/.<out name>.parts/``: where a stage keeps the resumable parts of output ``out``
    (align's chunks, pretrain's unfinished trainings) beside it, outside the atomic output that
    replaces the old one only when the stage succeeds; git-ignored by a ``.gitignore`` of its own."""
    out = Path(out)
    parts = out.parent / f".{out.name}.parts"
    parts.mkdir(parents=True, exist_ok=True)
    ignore = parts / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return parts


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))
