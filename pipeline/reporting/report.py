"""Build ``reports/results.md`` and ``reports/metrics.json`` from every ``eval/*/metrics.json``.

One table of (model, dataset) with our test accuracy next to the paper's, the papers' ablation
tables with ours where the run exists (else "not run in this profile"), the distillation rounds
(carried in the distilled models' evaluations), and parameters / FLOPs / latency; then the ``cv``
stage's k-fold tables (``eval/cv/<dataset>/metrics.json``; a pair evaluated only there shows its mean
± std in the first table). The data provenance comes from the sample generator's marker
(``data/raw/.synthetic-sample.json``): a dataset listed there is the generated sample, any other
is real data; the report says which, first thing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.reporting.paper_results import (ABLATIONS, EAN_DISTILL_GRID, EAN_LATENCY_MS, MAIN,
                                    MOBILENETV2_LATENCY_MS)

NOT_RUN = "not run in this profile"


def _metrics_by_folder(eval_dir: str | Path, pattern: str) -> dict[str, dict[str, Any]]:
    """``{folder name: parsed JSON}`` of every file matching ``pattern`` under ``eval_dir``, sorted."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(eval_dir).glob(pattern)):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
    return out


def collect_evaluations(eval_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{run name: metrics}`` of every ``<eval_dir>/<name>/metrics.json``, sorted by name."""
    return _metrics_by_folder(eval_dir, "*/metrics.json")


def collect_cross_validations(eval_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{dataset: cv result}`` of every ``<eval_dir>/cv/<dataset>/metrics.json`` (the ``cv`` stage)."""
    return _metrics_by_folder(eval_dir, "cv/*/metrics.json")


def cross_validation_section(cvs: dict[str, dict[str, Any]]) -> str:
    """One table per k-fold dataset: mean ± std over the test folds, per-class recall pooled."""
    from pipeline.evaluation.cv_table import results_table

    parts = []
    for ds, res in cvs.items():
        crop = "ten-crop" if res["settings"].get("ten_crop") else "centre-crop"
        parts += [f"### {ds}: subject-independent {res['k']}-fold ({len(res['folds'])} folds run)", "",
                  f"Accuracy {crop} on each test fold (`cv` stage, eval/cv/{ds}/); mean ± std over folds; "
                  "R = recall per class pooled over all test images.", "", results_table(res), ""]
    return "\n".join(parts).strip() or f"- {NOT_RUN}"


def provenance(raw_dir: str | Path, datasets: list[str]) -> dict[str, str]:
    """Per dataset: ``synthetic sample (per_class N, seed S)`` when the sample marker lists it, else ``real data``."""
    from pipeline.synthetic import MARKER

    marker = Path(raw_dir) / MARKER
    record = json.loads(marker.read_text()).get("datasets", {}) if marker.is_file() else {}
    out = {}
    for ds in datasets:
        if ds in record:
            r = record[ds]
            out[ds] = f"synthetic sample (per_class {r.get('per_class')}, seed {r.get('seed')})"
        else:
            out[ds] = f"real data ({Path(raw_dir) / ds})"
    return out


def distillation_records(evals: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{dataset: {rounds, best_round, alpha, temperature}}`` of every evaluated distilled model."""
    return {m["dataset"]: m["distillation"] for m in evals.values() if "distillation" in m}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _main_rows(evals: dict[str, dict[str, Any]], cvs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    seen = set()
    for (model, ds), (paper, metric, source) in MAIN.items():
        name = f"{model}-{ds}"
        seen.add(name)
        rows.append(_row(name, model, ds, evals.get(name), paper, metric, source))
        cv_model = ((cvs.get(ds) or {}).get("models") or {}).get(model)
        if cv_model is not None:
            rows[-1]["cv"] = {"k": cvs[ds]["k"], "mean": cv_model["mean"], "std": cv_model["std"]}
    for name, m in evals.items():  # runs the papers have no number for (other pairs, variants)
        if name not in seen:
            rows.append(_row(name, m.get("model", name), m.get("dataset", ""), m, None, "", ""))
    return rows


def _row(name, model, ds, m, paper, metric, source) -> dict[str, Any]:
    row = {"name": name, "model": model, "dataset": ds, "paper": paper, "paper_metric": metric,
           "paper_source": source, "run": m is not None}
    if m is not None:
        lat = m.get("latency") or {}
        row.update({"accuracy": m["accuracy"], "macro_f1": m["macro"]["f1"],
                    "macro_precision": m["macro"]["precision"], "n_test": m["n"], "params": m.get("params"),
                    "flops": m.get("flops"), "ms_per_frame": lat.get("ms_per_frame"),
                    "vs_mobilenetv2": lat.get("ratio"), "onnx_agrees": (m.get("onnx") or {}).get("agrees"),
                    "chance": chance_accuracy(m), "part": m.get("part", "test")})
        if "ten_crop" in m:
            row["accuracy_ten_crop"] = m["ten_crop"]["accuracy"]
    return row


def chance_accuracy(metrics: dict[str, Any]) -> float | None:
    """Accuracy of always answering the test part's most frequent class (the bar to beat clearly)."""
    support = [c.get("support", 0) for c in (metrics.get("per_class") or {}).values()]
    n = sum(support)
    return max(support) / n if n else None


def main_table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of (model, dataset): ours next to the paper's."""
    lines = ["| model | dataset | ours: test acc % | ours: macro F1 % | chance % | paper % | n test | params | MFLOPs "
             "| ms/frame (ONNX CPU) | × faster than MobileNetV2 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        paper = "–" if r["paper"] is None else (f"{r['paper']:.2f}" + (" (precision)" if r["paper_metric"] == "precision" else ""))
        if not r["run"]:
            cv = r.get("cv")
            ours = NOT_RUN if cv is None else f"{cv['k']}-fold: {_pct(cv['mean'])} ± {_pct(cv['std'])}"
            lines.append(f"| {r['model']} | {r['dataset']} | {ours} | | | {paper} | | | | | |")
            continue
        ms = "–" if r.get("ms_per_frame") is None else f"{r['ms_per_frame']:.3f}"
        ratio = "–" if r.get("vs_mobilenetv2") is None else f"{r['vs_mobilenetv2']:.2f}"
        chance = "–" if r.get("chance") is None else _pct(r["chance"])
        ours = _pct(r["accuracy"]) + ("" if r.get("part", "test") == "test" else f" ({r['part']}: no test rows)")
        lines.append(f"| {r['model']} | {r['dataset']} | {ours} | {_pct(r['macro_f1'])} | {chance} | {paper} "
                     f"| {r['n_test']} | {r['params']:,} | {r['flops'] / 1e6:.2f} | {ms} | {ratio} |")
    return "\n".join(lines)


def ablation_tables(evals: dict[str, dict[str, Any]]) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """Markdown of every paper's ablation table with our column, and the same as data."""
    parts, data = [], {}
    for title, rows in ABLATIONS.items():
        lines = [f"### {title}", "", "| variant | dataset | paper % | paper params | ours: test acc % | ours: params |",
                 "|---|---|---:|---:|---:|---:|"]
        data[title] = []
        for label, run, ds, paper, params in rows:
            m = evals.get(f"{run}-{ds}") if run else None
            ours = _pct(m["accuracy"]) if m else NOT_RUN
            ours_params = f"{m['params']:,}" if m and m.get("params") else ""
            lines.append(f"| {label} | {ds} | {'–' if paper is None else f'{paper:.2f}'} | "
                         f"{'' if params is None else f'{params:,}'} | {ours} | {ours_params} |")
            data[title].append({"variant": label, "run": f"{run}-{ds}" if run else None, "dataset": ds,
                                "paper": paper, "paper_params": params, "ours": m["accuracy"] if m else None})
        parts.append("\n".join(lines))
    return "\n\n".join(parts), data


def distillation_section(records: dict[str, dict[str, Any]]) -> str:
    """Validation accuracy per round of every distillation, and the paper's alpha/T grid."""
    lines = []
    for ds, rec in records.items():
        accs = " → ".join(f"r{r['round']}: {_pct(r['val_acc'])}" for r in rec["rounds"])
        lines.append(f"- **{ds}** (alpha {rec['alpha']}, T {rec['temperature']}): validation accuracy "
                     f"{accs} (round 0 = the teacher); best round {rec['best_round']}.")
    if not lines:
        lines.append(f"- {NOT_RUN}")
    grid = ["", "Paper 004, Table 2 (test accuracy %, after the iterations):", "",
            "| alpha | T | FER2013 | RAF-DB |", "|---:|---:|---:|---:|"]
    grid += [f"| {a} | {t} | {f:.2f} | {r:.2f} |" for a, t, f, r in EAN_DISTILL_GRID]
    return "\n".join(lines + grid)


def default_model() -> dict[str, Any] | None:
    """What ``predict`` uses without ``--checkpoint``/``--model``: the card of the network shipped in
    fer_models (``fer-pipeline publish``), or None when none ships."""
    from fer_models.pretrained import DEFAULT_SHIPPED, shipped_cfg

    card = shipped_cfg(DEFAULT_SHIPPED)
    if card is None:
        return None
    prov = card.get("provenance", {})
    return {"model": DEFAULT_SHIPPED, "file": f"fer_models/weights/{card['file']}", "sha256": card["sha256"],
            "dataset": prov.get("dataset"), "profile": prov.get("profile"),
            "validation_accuracy": prov.get("validation_accuracy"), "rounds": prov.get("rounds"),
            "best_round": prov.get("best_round"),
            "command": prov.get("command")}


def default_model_section(shipped: dict[str, Any] | None) -> str:
    if shipped is None:
        return ("No model ships in fer_models: `fer-pipeline predict` needs `--checkpoint` (a run above) "
                "or `--model` (an exported file).")
    made = f"trained on {shipped['dataset']}" + (f" under the `{shipped['profile']}` profile" if shipped["profile"] else "")
    if shipped["rounds"]:
        made += f", {shipped['rounds']} distillation round{'s' if shipped['rounds'] != 1 else ''}" + (
            f" (kept: round {shipped['best_round']}{', the teacher' if shipped['best_round'] == 0 else ''})"
            if shipped["best_round"] is not None else "")
    if shipped["validation_accuracy"] is not None:
        made += (f", validation accuracy {_pct(shipped['validation_accuracy'])}%"
                 + (" (PublicTest)" if shipped["dataset"] == "fer2013" else ""))
    lines = [f"`fer-pipeline predict` without `--checkpoint`/`--model` uses `{shipped['model']}` shipped in "
             f"`{shipped['file']}` (sha256 {shipped['sha256'][:16]}...): {made}. It is not one of this "
             "run's models; `--checkpoint models/<run>/checkpoint.pt` predicts with those."]
    if shipped["command"]:
        lines += ["", f"Remade from the raw folders by `{shipped['command']}`."]
    return "\n".join(lines)


def build_report(eval_dir: str | Path, raw_dir: str | Path, profile: str | None) -> tuple[str, dict[str, Any], str]:
    """The markdown report, the metrics document and what ``--print`` shows (the main table, then the
    k-fold tables if any)."""
    evals = collect_evaluations(eval_dir)
    cvs = collect_cross_validations(eval_dir)
    if not evals:
        raise FileNotFoundError(f"{eval_dir}: no */metrics.json — run the evaluate stages first")
    datasets = sorted({m.get("dataset") for m in evals.values() if m.get("dataset")})
    prov = provenance(raw_dir, datasets)
    synthetic = [d for d, p in prov.items() if p.startswith("synthetic")]
    rows = _main_rows(evals, cvs)
    table = main_table(rows)
    abl_md, abl_data = ablation_tables(evals)
    cv_md = cross_validation_section(cvs)
    records = distillation_records(evals)
    ean = [m["latency"]["ratio"] for n, m in evals.items() if m.get("arch") == "ean" and m.get("latency")]
    shipped = default_model()
    if synthetic:
        headline = (f"**Data: the generated synthetic sample** for {', '.join(synthetic)} — procedural faces, "
                    "not the real datasets. These numbers show that the pipeline runs and learns; they are "
                    "not comparable with the papers' numbers.")
    else:
        headline = "**Data: real datasets** read from data/raw/."
    md = "\n".join([
        "# Results", "",
        headline, "",
        f"Profile: `{profile}`. Data per dataset: " + "; ".join(f"{d}: {p}" for d, p in prov.items()) + ".", "",
        "Generated by `fer-pipeline report` (DVC stage `report`) from `eval/*/metrics.json`; test accuracy "
        "on each dataset's test part (k-fold datasets: the run's test fold); chance = always answering the "
        "test part's most frequent class. ERFNet-att's paper reports "
        "precision. Latency: ONNX Runtime, CPU, 1 thread, batch 1, median, measured in the same run as a "
        "randomly initialised torchvision MobileNetV2 at the same input; the ratio is MobileNetV2 ms / "
        f"model ms (paper 004 Table 5: {MOBILENETV2_LATENCY_MS} / {EAN_LATENCY_MS} = "
        f"{MOBILENETV2_LATENCY_MS / EAN_LATENCY_MS:.2f}x for EAN). FLOPs: multiply-adds + batch norm "
        "(EAN paper's convention).", "",
        "## Accuracy: ours next to the papers'", "", table, "",
        "## Ablations", "", abl_md, "",
        "## EAN iterative distillation", "", distillation_section(records), "",
        "## Cross-validation", "", cv_md, "",
        "## The model predict uses by default", "", default_model_section(shipped), "",
    ])
    doc = {"profile": profile, "data": prov, "synthetic": bool(synthetic), "runs": {r["name"]: r for r in rows},
           "ablations": abl_data, "distillation": records,
           "cross_validation": {ds: {m: {"mean": s["mean"], "std": s["std"], "accuracy_per_fold": s["accuracy_per_fold"]}
                                     for m, s in res["models"].items()} for ds, res in cvs.items()},
           "ean_latency_ratio_vs_mobilenetv2": min(ean) if ean else None, "default_model": shipped}
    if cvs:
        table += "\n\n" + cv_md
    return md, doc, table
