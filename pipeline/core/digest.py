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
