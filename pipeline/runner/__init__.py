"""Where work runs, never what it computes: Prefect flows of chunk tasks (``flows``), one shared
Prefect API for a whole ``dvc repro`` (``prefect_api``), and the scheduled rebuild flow
(``rebuild``: the DVC graph as read by ``dvc_graph``, one task per stage from ``stage_task``,
``artifacts`` of the results, the failure ``webhook``). No stage's output depends on this
package, so dvc.yaml lists it in no stage's deps.
"""
