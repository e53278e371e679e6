"""The ``fer-pipeline`` subcommands that are not DVC stages: ``sample``, ``models``, ``predict``,
``profile``, ``serve``. Thin like the stage entries; the work is in the package each names.
"""
