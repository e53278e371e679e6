"""Evaluate one checkpoint on its test rows: scores, confusion matrix, complexity, ONNX, latency.

The work of ``fer-pipeline evaluate``; writes into ``eval/<model>-<dataset>/``:

- ``metrics.json``: accuracy, per-class precision / recall / F1, macro averages (scikit-learn,
  see ``pipeline.evaluation.metrics``), optional ten-crop accuracy, parameters, FLOPs, ONNX agreement and
  ONNX Runtime CPU latency per frame next to MobileNetV2's (``pipeline.evaluation.latency``);
- ``confusion.json``: one ``{"actual", "predicted"}`` record per test image, the input of DVC's
  ``confusion`` / ``confusion_normalized`` plot templates;
- ``confusion.png``: the row-normalised confusion matrix;
- ``model.onnx``: the exported network (batch axis dynamic).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.atomic import atomic_path, write_text


def onnx_agreement(model, session, batch) -> float:
    """Largest absolute difference between PyTorch and ONNX Runtime logits on ``batch``."""
    import torch

    from pipeline.evaluation.onnx_export import run_onnx

    with torch.no_grad():
        ref = model.eval()(batch).numpy()
    return float(np.abs(run_onnx(session, batch) - ref).max())


def confusion_records(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> list[dict[str, str]]:
    """DVC's confusion-plot input: one record per sample, class names as values."""
    return [{"actual": names[int(t)], "predicted": names[int(p)]} for t, p in zip(y_true, y_pred)]


def save_confusion_png(normalized: list[list[float]], names: list[str], path: str | Path, title: str) -> None:
    """The row-normalised confusion matrix as a PNG (scikit-learn's display, matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(names), 0.8 + 0.7 * len(names)), dpi=100)
    ConfusionMatrixDisplay(np.asarray(normalized), display_labels=names).plot(
        ax=ax, cmap="Blues", values_format=".2f", colorbar=False, xticks_rotation=45)
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def evaluate_checkpoint(checkpoint: str | Path, test_rows, out_dir: str | Path, settings: dict[str, Any], *,
                        name: str, device: str | torch.device = "cpu", part: str = "test") -> dict[str, Any]:  # noqa: F821
    """Score ``checkpoint`` on ``test_rows`` (a :class:`~pipeline.shards.dataset.ShardDataset`
    selection) with :func:`pipeline.evaluation.scoring.score` and write the outputs listed above.

    ``settings`` (``evaluate`` params): ``batch_size``, ``ten_crop`` (bool), ``latency``
    (``{runs, threads}``; ``runs: 0`` skips timing), ``onnx_tolerance``. ``part``: which part the rows
    are (``test``, or ``validation`` for data without a test part), recorded in metrics.json. ``device``: where the test
    rows are scored (a GPU when the stage's ``device`` says so); parameters, FLOPs, the ONNX export
    and its check, and the latency (ONNX Runtime, CPU) are measured on the CPU wherever it scores.
    """
    import torch

    from pipeline.evaluation.complexity import count_flops, count_params
    from pipeline.evaluation.latency import latency_vs_reference
    from pipeline.evaluation.metrics import classification_metrics
    from pipeline.evaluation.onnx_export import onnx_session
    from pipeline.evaluation.scoring import score
    from pipeline.training.checkpoint import load_model
    from pipeline.training.data import with_transform
    from pipeline.training.transforms import eval_transform, input_px

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, ckpt = load_model(checkpoint, "cpu")
    recipe, names = ckpt["recipe"], list(ckpt["label_names"])
    channels, size = int(ckpt["in_chans"]), input_px(recipe["input"])
    if len(test_rows) == 0:
        raise ValueError(f"{name}: no {part} rows to evaluate {checkpoint} on")
    scores = score(model.to(device), ckpt, test_rows, batch_size=int(settings.get("batch_size", 64)),
                   ten_crop=bool(settings.get("ten_crop")), device=device)
    model = model.cpu()
    y_true, y_pred = scores.y_true, scores.centre.argmax(1)
    metrics: dict[str, Any] = {"model": ckpt.get("run_model", ckpt["model"]), "arch": ckpt["model"], "name": name,
                               "dataset": ckpt.get("dataset"), "fold": ckpt.get("fold", -1), "checkpoint": str(checkpoint),
                               "params_hash": ckpt.get("params_hash"), "input": [channels, size, size], "part": part}
    metrics.update(classification_metrics(y_true, y_pred, names))
    if "rounds" in ckpt:  # a distilled model: its rounds travel with its evaluation
        metrics["distillation"] = {"rounds": ckpt["rounds"], "best_round": ckpt.get("best_round"),
                                   "alpha": ckpt["distill"]["alpha"], "temperature": ckpt["distill"]["temperature"]}
    if scores.ten_crop is not None:
        m10 = classification_metrics(y_true, scores.ten_crop.argmax(1), names)
        metrics["ten_crop"] = {"accuracy": m10["accuracy"], "macro_f1": m10["macro"]["f1"]}
    shape = (1, channels, size, size)
    metrics["params"] = count_params(model)
    metrics["flops"] = count_flops(model, shape, convention="paper")  # multiply-adds + BN, as EAN's paper
    lat = settings.get("latency") or {}
    onnx_path = out_dir / "model.onnx"
    if int(lat.get("runs", 200)) > 0:
        with tempfile.TemporaryDirectory() as tmp:  # the reference's ONNX file is not an output
            metrics["latency"] = latency_vs_reference(model, shape, tmp, runs=int(lat.get("runs", 200)),
                                                      threads=int(lat.get("threads", 1)), model_onnx=onnx_path)
    else:
        from pipeline.evaluation.onnx_export import export_onnx

        export_onnx(model, shape, onnx_path)
    ds = with_transform(test_rows, channels, eval_transform(recipe))
    batch = torch.stack([ds[i][0] for i in range(min(len(ds), 16))])
    diff = onnx_agreement(model, onnx_session(onnx_path), batch)
    metrics["onnx"] = {"max_abs_diff": diff, "agrees": diff <= float(settings.get("onnx_tolerance", 1e-3))}
    write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_text(out_dir / "confusion.json", json.dumps(confusion_records(y_true, y_pred, names)) + "\n")
    save_confusion_png(metrics["confusion"]["normalized"], names, out_dir / "confusion.png",
                       f"{name}  acc {metrics['accuracy']:.3f}")
    return metrics
