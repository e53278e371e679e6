"""The DVC stages' thin entries, one module per stage named as the stage and its subcommand
(``ingest`` <-> ``fer-pipeline ingest`` <-> ``ingest@<dataset>``): each adds its arguments, reads
its params, calls its package and reports. The work is one hop away in the package of the same
name (``pipeline.ingest``, ``pipeline.align``, ``pipeline.shard``, ``pipeline.training``,
``pipeline.evaluation``, ``pipeline.reporting``).
"""
