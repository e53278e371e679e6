"""The one SHA-256 of a file's bytes (read in 1 MiB blocks): align's part checks, the shard card's
input hash, a weights file's run key, a published network's provenance."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def dvc_md5(path: str | os.PathLike) -> dict:
    """What ``dvc.lock`` would record for the output ``path`` (a file or a folder): ``md5`` (a folder's
    ends in ``.dir``), ``size`` and, for a folder, ``nfiles``; computed by DVC's own hashing
    (``dvc_data``), so it matches the lock of a ``dvc repro`` that wrote the same bytes, and works where
    no lock exists (a benchmark's scratch directory)."""
    import tempfile

    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    fs = LocalFileSystem()
    with tempfile.TemporaryDirectory(prefix="dvc-md5-") as scratch:
        _, meta, obj = build(HashFileDB(fs, scratch), os.fspath(path), fs, "md5", dry_run=True)
    info = {"md5": obj.hash_info.value, "size": meta.size}
    if meta.isdir:
        info["nfiles"] = meta.nfiles
    return info
