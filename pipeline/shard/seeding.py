"""Order-independent seeds: a row's randomness depends on its identity, not on when it is processed."""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    """A 32-bit seed derived from ``parts`` (e.g. global seed, image_id, copy index).

    The same parts give the same seed in every process, worker and run (unlike ``hash()``), so
    per-row random draws do not depend on row order, chunking or the number of workers.
    """
    key = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little")
