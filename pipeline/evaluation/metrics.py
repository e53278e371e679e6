"""Classification metrics of one evaluation, computed by scikit-learn (never by hand).

Accuracy, per-class precision / recall / F1 / support, their macro averages and the
row-normalised confusion matrix, as one JSON-ready mapping that ``evaluate`` writes to
``eval/<model>-<dataset>/metrics.json`` and ``report`` reads back.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int],
                           names: Sequence[str]) -> dict[str, Any]:
    """Metrics of predictions ``y_pred`` against ``y_true`` over classes ``0..len(names)-1``.

    Every class in ``names`` is reported, also one absent from the test data (support 0,
    scores 0 by ``zero_division=0``) so tables of different runs line up.

    Returns:
        ``{"n", "accuracy", "macro": {precision, recall, f1}, "per_class": {name: {precision,
        recall, f1, support}}, "confusion": {"labels", "normalized", "counts"}}``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal 1-D arrays")
    if len(y_true) == 0:
        raise ValueError("no predictions to score")
    labels = list(range(len(names)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro",
                                                    zero_division=0)
    counts = confusion_matrix(y_true, y_pred, labels=labels)
    normalized = confusion_matrix(y_true, y_pred, labels=labels, normalize="true")
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro": {"precision": float(mp), "recall": float(mr), "f1": float(mf)},
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                   "support": int(s[i])}
            for i, name in enumerate(names)
        },
        "confusion": {
            "labels": list(names),
            "counts": counts.astype(int).tolist(),
            "normalized": np.nan_to_num(normalized).round(6).tolist(),
        },
    }
