"""The Markdown table of a k-fold result (``pipeline.evaluation.crossval``): one row per model, mean ± std
accuracy over folds, per-class recall pooled over folds, time. Pure formatting of the result
mapping, shared by the ``cv`` stage and the ``report`` stage (which must not import training code).
"""

from __future__ import annotations

from typing import Any


def results_table(result: dict[str, Any]) -> str:
    """A Markdown table: model, params, mean ± std accuracy, per-class recall (pooled), training time
    (the sum over folds of each fold's run: with ``workers`` > 1 the run's wall time is less)."""
    classes = result["classes"]
    short = [c[:4] for c in classes]
    head = ["model", "params", "accuracy (mean ± std)", "centre-crop"] + [f"R {s}" for s in short] + ["time (sum of folds)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in result["models"].items():
        recall = [f"{100 * s['recall'][c]:.1f}" for c in classes]
        lines.append("| " + " | ".join([name, f"{s['params']:,}", f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}",
                                         f"{100 * s['centre_mean']:.2f}"] + recall + [duration(s["seconds"])]) + " |")
    return "\n".join(lines)


def duration(seconds: float) -> str:
    """``seconds`` as ``MmSSs``, e.g. 1225 -> 20m25s."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s"
