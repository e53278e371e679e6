"""fer-pipeline: ingest, align, shard, train, distill and evaluate FER datasets as DVC stages.

Layout (docs/architecture.md): ``stages/`` holds one thin entry per DVC stage, named as the stage
and its subcommand (``pipeline/stages/ingest.py`` <-> ``fer-pipeline ingest`` <-> ``ingest@<dataset>``),
``commands/`` the other subcommands; each calls the package of the same job one hop away
(``ingest``, ``align``, ``shard``, ``shards``, ``training``, ``evaluation``, ``reporting``,
``inference``, ``synthetic``), on top of ``core`` (params, labels, atomic writes). ``runner``
decides where chunks run, never what they compute. ``pipeline`` imports ``fer_models``; never the
other way round.
"""

__version__ = "0.1.0"
