"""Evaluation: scikit-learn metrics, the evaluate stage's outputs, ONNX agreement, latency figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score
from train_helpers import tiny_shards, write_params

from pipeline.cli import main
from pipeline.evaluation.metrics import classification_metrics


def test_metrics_equal_scikit_learn_on_fixed_predictions():
    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 0])
    y_pred = np.array([0, 1, 1, 1, 2, 2, 2, 0, 2, 0])
    names = ["anger", "happiness", "surprise", "fear"]  # fear: no support, never predicted
    m = classification_metrics(y_true, y_pred, names)
    labels = [0, 1, 2, 3]
    assert m["n"] == 10 and m["accuracy"] == accuracy_score(y_true, y_pred) == 0.7
    for avg_key, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        assert m["macro"][avg_key] == pytest.approx(fn(y_true, y_pred, labels=labels, average="macro", zero_division=0))
        per = fn(y_true, y_pred, labels=labels, average=None, zero_division=0)
        assert [m["per_class"][n][avg_key] for n in names] == pytest.approx(per.tolist())
    assert [m["per_class"][n]["support"] for n in names] == [3, 3, 4, 0]
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    assert m["confusion"]["counts"] == cm.tolist()
    rows = m["confusion"]["normalized"]
    assert rows[2] == pytest.approx([0.25, 0.0, 0.75, 0.0]) and rows[3] == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0], names)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("evaluate")
    data = tiny_shards(base, "rafdb", "ratio")
    params = write_params(base / "params.yaml", ean={"epochs": 1})
    assert main(["train", "--model", "ean", "--dataset", "rafdb", "--data", str(data), "--out", str(base / "models"),
                 "--params", str(params)]) == 0
    assert main(["evaluate", "--model", "ean", "--dataset", "rafdb", "--data", str(data), "--models",
                 str(base / "models"), "--out", str(base / "eval"), "--params", str(params)]) == 0
    return base, data


def test_evaluate_writes_metrics_confusion_and_onnx(evaluated):
    from pipeline.training.checkpoint import load_model
    from pipeline.training.data import load_split_data, make_loader, with_transform
    from pipeline.training.loop import predict_proba
    from pipeline.training.transforms import eval_transform

    base, data = evaluated
    out = base / "eval" / "ean-rafdb"
    m = json.loads((out / "metrics.json").read_text())
    # the scores are those of the checkpoint's own predictions on the test part
    model, ckpt = load_model(base / "models" / "ean-rafdb" / "checkpoint.pt")
    test = load_split_data(data / "rafdb").test
    ds = with_transform(test, 1, eval_transform(ckpt["recipe"]))
    probs, labels = predict_proba(model, make_loader(ds, 7, shuffle=False), torch.device("cpu"))
    assert m["n"] == len(test) == len(labels)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, probs.argmax(1)))
    assert set(m["per_class"]) == {"anger", "happiness", "surprise"}
    assert m["params"] == sum(p.numel() for p in model.parameters()) and m["flops"] > 0
    assert "ten_crop" in m and 0.0 <= m["ten_crop"]["accuracy"] <= 1.0
    records = json.loads((out / "confusion.json").read_text())
    assert len(records) == m["n"] and set(records[0]) == {"actual", "predicted"}
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lat = m["latency"]
    assert lat["reference"] == "mobilenet_v2" and lat["input_shape"] == [1, 1, 20, 20]
    assert lat["ratio"] == pytest.approx(lat["reference_ms_per_frame"] / lat["ms_per_frame"])


def test_onnx_and_pytorch_agree(evaluated):
    from pipeline.evaluation.onnx_export import onnx_session, run_onnx
    from pipeline.training.checkpoint import load_model

    base, _ = evaluated
    m = json.loads((base / "eval" / "ean-rafdb" / "metrics.json").read_text())
    assert m["onnx"]["agrees"] and m["onnx"]["max_abs_diff"] < 1e-4
    model, _ = load_model(base / "models" / "ean-rafdb" / "checkpoint.pt")
    x = torch.randn(5, 1, 20, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x).numpy()
    got = run_onnx(onnx_session(base / "eval" / "ean-rafdb" / "model.onnx"), x)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_evaluate_names_a_missing_checkpoint(evaluated, tmp_path):
    base, data = evaluated
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        main(["evaluate", "--model", "resatt", "--dataset", "rafdb", "--data", str(data), "--models",
              str(base / "models"), "--out", str(tmp_path)])


def test_without_test_rows_evaluate_scores_the_validation_part_and_says_so(evaluated, tmp_path, capsys):
    """FER2013 without PrivateTest: no test shards. Evaluate scores PublicTest (validation), labelled so."""
    import shutil

    from pipeline.reporting.report import _main_rows, collect_evaluations, main_table

    base, data = evaluated
    public = tmp_path / "processed"
    shutil.copytree(data, public)
    for path in (public / "rafdb").glob("test-*.parquet"):
        path.unlink()
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", "ean", "--dataset", "rafdb", "--data", str(public), "--models",
                 str(base / "models"), "--out", str(out), "--params", str(base / "params.yaml")]) == 0
    assert "ean-rafdb: validation accuracy" in capsys.readouterr().out
    m = json.loads((out / "ean-rafdb" / "metrics.json").read_text())
    tested = json.loads((base / "eval" / "ean-rafdb" / "metrics.json").read_text())
    from pipeline.training.data import load_split_data

    split = load_split_data(public / "rafdb")
    assert m["part"] == "validation" and tested["part"] == "test"
    assert len(split.test) == 0 and m["n"] == len(split.validation) > 0
    table = main_table(_main_rows(collect_evaluations(out), {}))
    assert "(validation: no test rows)" in table
