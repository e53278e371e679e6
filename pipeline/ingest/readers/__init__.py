"""Dataset readers: one per dataset behind :class:`pipeline.ingest.readers.base.Reader`.

``get_reader(name)`` returns the reader of a dataset named as in ``params.yaml`` ``datasets``.
"""

from __future__ import annotations

from pipeline.ingest.readers.base import (
    Candidate, LayoutError, Quarantined, Reader, Record, Scan, TextFileError,
)
from pipeline.ingest.readers.ckplus import CkplusReader
from pipeline.ingest.readers.fer2013 import Fer2013Reader
from pipeline.ingest.readers.jaffe import JaffeReader
from pipeline.ingest.readers.kdef import KdefReader
from pipeline.ingest.readers.rafdb import RafdbReader

READERS: dict[str, type[Reader]] = {
    cls.name: cls for cls in (Fer2013Reader, CkplusReader, JaffeReader, RafdbReader, KdefReader)
}


def get_reader(name: str) -> Reader:
    """The reader of dataset ``name``; a clear error for an unknown name."""
    try:
        return READERS[name]()
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(READERS)}") from None


__all__ = ["READERS", "Candidate", "LayoutError", "Quarantined", "Reader", "Record", "Scan", "TextFileError",
           "get_reader"]
