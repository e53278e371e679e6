"""The work of stage ``ingest``: one reader per dataset behind one interface (``readers``), the
chunked decoding of a scan (``dataset``) and the ``manifest`` writer that accounts for every input
as kept or quarantined with a reason.
"""

from pipeline.ingest.dataset import format_summary, ingest_dataset

__all__ = ["format_summary", "ingest_dataset"]
