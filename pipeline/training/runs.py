"""Names of runs: the directory of a (model, dataset[, fold]) run and the distilled EAN's run model."""

from __future__ import annotations

#: the run model of EAN after iterative distillation: models/ean_distilled-<dataset>/, a cv row
DISTILLED = "ean_distilled"


def run_name(model: str, dataset: str, fold: int | None = None) -> str:
    """``<model>-<dataset>`` (``-fold<K>`` with an explicit fold): the directory of a run."""
    return f"{model}-{dataset}" + (f"-fold{fold}" if fold is not None else "")
