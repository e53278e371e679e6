"""Report: ours next to the papers', ablations, distillation rounds, provenance, --print."""

from __future__ import annotations

import json

import numpy as np

from pipeline.cli import main
from pipeline.evaluation.metrics import classification_metrics


def _eval(root, name, model, dataset, acc_hits, extra=None):
    y_true = np.arange(10) % 2
    y_pred = np.where(np.arange(10) < acc_hits, y_true, 1 - y_true)
    m = {"model": model, "arch": model.split("_")[0], "name": name, "dataset": dataset,
         **classification_metrics(y_true, y_pred, ["anger", "happiness"]), "params": 43_000, "flops": 5_000_000,
         "latency": {"ms_per_frame": 0.2, "reference_ms_per_frame": 0.8, "ratio": 4.0, "reference": "mobilenet_v2"},
         "onnx": {"max_abs_diff": 1e-7, "agrees": True}, **(extra or {})}
    (root / name).mkdir(parents=True)
    (root / name / "metrics.json").write_text(json.dumps(m))


def _setup(tmp_path, synthetic: bool):
    ev = tmp_path / "eval"
    _eval(ev, "ean-rafdb", "ean", "rafdb", 8)
    _eval(ev, "ean_noatt-rafdb", "ean_noatt", "rafdb", 7)
    rounds = {"rounds": [{"round": 0, "val_acc": 0.7}, {"round": 1, "val_acc": 0.9}, {"round": 2, "val_acc": 0.8}],
              "best_round": 1, "alpha": 0.5, "temperature": 5.0}
    _eval(ev, "ean_distilled-rafdb", "ean_distilled", "rafdb", 9, {"distillation": rounds})
    raw = tmp_path / "raw"
    raw.mkdir()
    if synthetic:
        (raw / ".synthetic-sample.json").write_text(json.dumps({"datasets": {"rafdb": {"per_class": 40, "seed": 0}}}))
    params = tmp_path / "params.yaml"
    params.write_text("profile: demo\nreport: {eval_dir: %s}\n" % ev)
    return raw, params


def test_report_tables_ours_next_to_the_papers(tmp_path, capsys):
    raw, params = _setup(tmp_path, synthetic=True)
    assert main(["report", "--raw", str(raw), "--out", str(tmp_path / "reports"), "--params", str(params),
                 "--print"]) == 0
    md = (tmp_path / "reports" / "results.md").read_text()
    doc = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert "**Data: the generated synthetic sample** for rafdb" in md and doc["synthetic"] is True
    assert "| ean | rafdb | 80.00 | " in md and "| 82.56 |" in md          # ours next to the paper's
    assert "| ean | rafdb | 80.00 | 80.00 | 50.00 | 82.56 |" in md         # chance: the majority class, 5 of 10
    assert doc["runs"]["ean-rafdb"]["chance"] == 0.5
    assert "| ean_distilled | rafdb | 90.00 |" in md and "85.30" in md
    assert "| dfnet | rafdb | not run in this profile |" in md             # a pair without an evaluation
    assert "| no attention | rafdb | 81.54 | 43,822 | 70.00 |" in md       # EAN Table 6 ablation, ours filled in
    assert "| ResNet50 + DCM | rafdb | 88.82 | 57,090,000 | not run in this profile |" in md
    assert "r0: 70.00 → r1: 90.00 → r2: 80.00" in md and "best round 1" in md
    assert doc["runs"]["ean-rafdb"]["accuracy"] == 0.8 and doc["runs"]["ean-rafdb"]["paper"] == 82.56
    assert doc["ean_latency_ratio_vs_mobilenetv2"] == 4.0
    printed = capsys.readouterr().out
    assert "generated synthetic sample" in printed and "| ean | rafdb | 80.00 |" in printed


def test_report_says_real_data_without_the_sample_marker(tmp_path):
    raw, params = _setup(tmp_path, synthetic=False)
    assert main(["report", "--raw", str(raw), "--out", str(tmp_path / "reports"), "--params", str(params)]) == 0
    md = (tmp_path / "reports" / "results.md").read_text()
    assert "**Data: real datasets**" in md and "synthetic sample" not in md
    assert json.loads((tmp_path / "reports" / "metrics.json").read_text())["synthetic"] is False


def test_report_includes_the_cv_stage_tables(tmp_path, capsys):
    raw, params = _setup(tmp_path, synthetic=False)
    cv = tmp_path / "eval" / "cv" / "ckplus"
    cv.mkdir(parents=True)
    model = {"params": 43_552, "mean": 0.847, "std": 0.0789, "centre_mean": 0.8287, "seconds": 1225.0,
             "accuracy_per_fold": [0.8, 0.894], "recall": {"anger": 0.651, "happiness": 0.969}}
    result = {"dataset": "ckplus", "k": 10, "folds": [0, 1], "classes": ["anger", "happiness"],
              "settings": {"ten_crop": True}, "models": {"ean": model, "resatt": dict(model, mean=0.732, std=0.0954)}}
    (cv / "metrics.json").write_text(json.dumps(result))
    assert main(["report", "--raw", str(raw), "--out", str(tmp_path / "reports"), "--params", str(params),
                 "--print"]) == 0
    md = (tmp_path / "reports" / "results.md").read_text()
    assert "### ckplus: subject-independent 10-fold (2 folds run)" in md
    assert "| ean | 43,552 | 84.70 ± 7.89 | 82.87 | 65.1 | 96.9 | 20m25s |" in md
    assert "| resatt | ckplus | 10-fold: 73.20 ± 9.54 |" in md     # evaluated only by the cv stage
    assert "| ean | rafdb | 80.00 |" in md                           # single-split runs unchanged
    doc = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert doc["cross_validation"]["ckplus"]["resatt"]["mean"] == 0.732
    assert "| ean | 43,552 | 84.70 ± 7.89 |" in capsys.readouterr().out


def test_report_names_the_model_predict_uses_by_default(tmp_path, monkeypatch):
    from fer_models import pretrained as shipped

    raw, params = _setup(tmp_path, synthetic=False)
    monkeypatch.setattr(shipped, "PACKAGE_WEIGHTS", tmp_path / "weights")
    assert main(["report", "--raw", str(raw), "--out", str(tmp_path / "none"), "--params", str(params)]) == 0
    md = (tmp_path / "none" / "results.md").read_text()
    assert "No model ships in fer_models: `fer-pipeline predict` needs `--checkpoint`" in md
    assert json.loads((tmp_path / "none" / "metrics.json").read_text())["default_model"] is None
    (tmp_path / "weights").mkdir()
    card = {"file": "ean.pt", "sha256": "ab" * 32, "classes": ["anger", "happiness"],
            "provenance": {"dataset": "fer2013", "profile": "fer2013", "validation_accuracy": 0.7123, "rounds": 3,
                           "best_round": 2,
                           "command": "python bench/fer2013.py --raw fer2013-folders --publish"}}
    (tmp_path / "weights" / "ean.json").write_text(json.dumps(card))
    assert main(["report", "--raw", str(raw), "--out", str(tmp_path / "shipped"), "--params", str(params)]) == 0
    md = (tmp_path / "shipped" / "results.md").read_text()
    assert ("uses `ean` shipped in `fer_models/weights/ean.pt` (sha256 abababababababab...): trained on fer2013 "
            "under the `fer2013` profile, 3 distillation rounds (kept: round 2), validation accuracy 71.23%") in md
    assert "Remade from the raw folders by `python bench/fer2013.py --raw fer2013-folders --publish`." in md
    doc = json.loads((tmp_path / "shipped" / "metrics.json").read_text())
    assert doc["default_model"]["validation_accuracy"] == 0.7123 and doc["default_model"]["sha256"] == "ab" * 32
