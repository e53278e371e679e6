"""Where work runs, never what it computes: Prefect flows of chunk tasks (``flows``), one shared
Prefect API for a whole ``dvc repro`` (``prefect_api``), and the scheduled rebuild flow
(``rebuild``). No stage's output depends on this package, so dvc.yaml lists it in no stage's deps.
"""
