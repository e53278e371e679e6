"""fer-pipeline: ingest, align, shard, train, distill and evaluate FER datasets, one DVC stage per module.

Every stage lives in a module of the same name as its DVC stage and its CLI subcommand
(``pipeline/ingest.py`` <-> ``fer-pipeline ingest`` <-> ``ingest@<dataset>``). ``pipeline`` imports
``fer_models``; never the other way round.
"""

__version__ = "0.1.0"

DATASETS = ("fer2013", "ckplus", "jaffe", "rafdb", "kdef")
