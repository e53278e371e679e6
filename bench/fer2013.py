"""Real-data benchmark: FER2013 through every stage at full size, and EAN against its paper's Table 2 (issue 26).

    python bench/fer2013.py --raw ../shared/realdata/fer2013-folders [--models ean] [--work DIR] [--publish]

Runs the project's own stages under the ``fer2013`` profile (``profiles/fer2013.yaml`` over
``params.yaml``) in a scratch directory, on any FER2013 folder the reader knows (the CSVs, or the
image-folder edition ``train/<class>/Training_<n>.jpg``, ``test/<class>/PublicTest_<n>.jpg`` and,
in the full edition, ``PrivateTest_<n>.jpg``):

1. ``ingest`` -> ``align`` -> ``shard``, each in its own process: images, wall time, peak RSS;
2. ``train`` of every model of ``--models`` (default ``ean``), then, with ``ean``, ``distill`` (EAN's
   iterative teacher-student rounds until PublicTest stops improving);
3. every trained model scored (ten-crop, the papers' number) on PublicTest, the part every choice
   was made on, and on PrivateTest when the folder has it (only reported, never used for a choice).

It prints one Markdown table, a row per model (``ean``, ``ean_distilled``, ...): PublicTest %,
PrivateTest % (``-`` without such files), the paper's number, per-class recall (on PrivateTest when
present, else PublicTest), distillation rounds, training images/second (median over epochs), and
the wall time of the whole run. With ``--work DIR`` a re-run reuses what is finished: the data
stages, trained models, and inside an interrupted training or distillation its finished epochs and
rounds (the stages' own resuming). With ``--publish`` the distilled EAN is shipped inside
``fer_models`` (``fer-pipeline publish``): the model ``predict`` uses when given none. ``--set KEY=VALUE``
(repeatable, as ``dvc exp run --set-param``) changes one params key over the profile, e.g. ``--set
distill.fer2013.optimizer.lr=0.01``: a lever measured in its own ``--work`` (a copy of a finished one
reuses every stage the change does not touch). Results and the protocol: docs/results/fer2013.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# the data stages run as Prefect flows; on a busy machine its temporary server needs longer to start
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

DATASET = "fer2013"
PROFILE = "fer2013"


def bench_params(base: Path, epochs: int | None = None, rounds: int | None = None,
                 assignments: list[str] | None = None) -> dict:
    """``base`` (the demo params) with the fer2013 profile and the ``KEY=VALUE`` ``assignments``
    (``--set``: a lever tried without editing the profile) applied; ``epochs``/``rounds`` shorten
    every recipe and the distillation (smoke runs only)."""
    import yaml

    from pipeline.profiles import compose
    from pipeline.training.recipe import check_profile

    params = yaml.safe_load(compose(base.read_text(), PROFILE, ROOT / "profiles", check_profile, assignments or ()))
    if epochs is not None:
        for name, recipe in params["train"].items():
            if name not in ("matrix", "defaults") and isinstance(recipe, dict):
                recipe["epochs"] = int(epochs)
        params["distill"][DATASET]["epochs"] = int(epochs)
    if rounds is not None:
        params["distill"][DATASET]["max_rounds"] = int(rounds)
    return params


def run_stage(argv: list[str], log: Path) -> dict:
    """``fer-pipeline <argv>`` in a child process: its wall time and peak RSS (that process alone),
    output appended to ``log``; a failure stops the bench with the output's tail."""
    cmd = [sys.executable, "-m", "pipeline.cli", *argv]
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(f"fer-pipeline {' '.join(argv[:2])} failed:\n" + "\n".join(tail))
    return {"seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024}  # ru_maxrss: KiB on Linux


def data_stages(raw: Path, work: Path, params_file: Path) -> dict[str, dict]:
    """ingest -> align -> shard of ``raw`` into ``work`` (each skipped when its output is there);
    per stage: images, wall time, peak RSS (recorded in ``work/data_stages.json``)."""
    record = work / "data_stages.json"
    done = json.loads(record.read_text()) if record.is_file() else {}
    interim, aligned, processed = work / "interim" / DATASET, work / "aligned" / DATASET, work / "processed" / DATASET
    steps = {
        "ingest": (["ingest", DATASET, "--raw", str(raw), "--out", str(interim), "--no-prefect"],
                   interim / "summary.json"),
        "align": (["align", DATASET, "--manifest", str(interim), "--out", str(aligned), "--no-progress"],
                  aligned / "summary.json"),
        "shard": (["shard", DATASET, "--aligned", str(aligned), "--out", str(processed), "--no-prefect",
                   "--no-progress"], processed / "stats.json"),
    }
    for name, (argv, output) in steps.items():
        if name in done and output.exists():
            continue
        done[name] = run_stage(argv + ["--params", str(params_file)], work / f"{name}.log")
        record.write_text(json.dumps(done, indent=2))
    summary = json.loads((interim / "summary.json").read_text())
    done["ingest"]["images"] = summary["read"]
    done["ingest"]["summary"] = summary
    for name in ("align", "shard"):
        done[name]["images"] = summary["kept"]
    return done


def finished(checkpoint: Path, recipe: dict) -> bool:
    """Whether ``checkpoint`` exists and was trained by ``recipe`` (a re-run with the same --work)."""
    if not checkpoint.is_file():
        return False
    from pipeline.training.checkpoint import read_checkpoint

    return read_checkpoint(checkpoint).get("recipe") == recipe


def images_per_second(run_dir: Path) -> float | None:
    """Median training images/second over the epochs of ``run_dir`` (its DVCLive log)."""
    tsv = run_dir / "dvclive" / "plots" / "metrics" / "train" / "images_per_second.tsv"
    if not tsv.is_file():
        return None
    values = [float(line.split("\t")[-1]) for line in tsv.read_text().splitlines()[1:] if line.strip()]
    return statistics.median(values) if values else None


def train_models(models: list[str], distill: bool, work: Path, params_file: Path, params: dict) -> dict[str, Path]:
    """Train each of ``models`` (stage ``train``) and, with ``distill``, EAN's rounds (stage ``distill``),
    in this process; returns run name -> run directory."""
    from pipeline.cli import main
    from pipeline.training.checkpoint import read_checkpoint
    from pipeline.training.recipe import for_dataset, load_recipe
    from pipeline.training.runs import DISTILLED

    runs: dict[str, Path] = {}
    for name in models:
        run_dir = work / "models" / f"{name}-{DATASET}"
        recipe = for_dataset(load_recipe("train", name, str(params_file)), DATASET)
        if not finished(run_dir / "checkpoint.pt", recipe):
            argv = ["train", "--model", name, "--dataset", DATASET, "--data", str(work / "processed"),
                    "--out", str(work / "models"), "--pretrained", str(work / "pretrained"), "--params", str(params_file)]
            if main(argv) != 0:
                raise SystemExit(f"fer-pipeline train --model {name} failed")
        runs[name] = run_dir
    if distill:
        run_dir = work / "models" / f"{DISTILLED}-{DATASET}"
        settings = load_recipe("distill", DATASET, str(params_file))
        if not (run_dir / "checkpoint.pt").is_file() or read_checkpoint(run_dir / "checkpoint.pt").get("distill") != settings:
            argv = ["distill", "--dataset", DATASET, "--data", str(work / "processed"), "--models", str(work / "models"),
                    "--params", str(params_file)]
            if main(argv) != 0:
                raise SystemExit("fer-pipeline distill failed")
        runs[DISTILLED] = run_dir
    return runs


def score_runs(runs: dict[str, Path], data_root: Path, batch_size: int) -> dict[str, dict]:
    """Ten-crop accuracy of each run on PublicTest (validation) and PrivateTest (test, when present),
    per-class recall, rounds and training throughput."""
    from pipeline.evaluation.metrics import classification_metrics
    from pipeline.evaluation.scoring import score
    from pipeline.training.checkpoint import load_model
    from pipeline.training.data import load_split_data

    data = load_split_data(data_root / DATASET)
    out: dict[str, dict] = {}
    for name, run_dir in runs.items():
        model, ckpt = load_model(run_dir / "checkpoint.pt", "cpu")
        row: dict = {"params": sum(p.numel() for p in model.parameters()), "rounds": None}
        for part, rows in (("PublicTest", data.validation), ("PrivateTest", data.test)):
            if len(rows) == 0:
                row[part] = None
                continue
            scores = score(model, ckpt, rows, batch_size=batch_size, ten_crop=True)
            metrics = classification_metrics(scores.y_true, scores.reported.argmax(1), list(ckpt["label_names"]))
            row[part] = {"accuracy": metrics["accuracy"], "centre": scores.accuracy(scores.centre),
                         "recall": {c: metrics["per_class"][c]["recall"] for c in ckpt["label_names"]}}
        if "rounds" in ckpt:
            row["rounds"] = len(ckpt["rounds"]) - 1
            row["best_round"] = ckpt.get("best_round")
            speeds = [images_per_second(run_dir / "rounds" / f"round-{r['round']}") for r in ckpt["rounds"][1:]]
            speeds = [s for s in speeds if s]
            row["images_per_second"] = statistics.median(speeds) if speeds else None
        else:
            row["images_per_second"] = images_per_second(run_dir)
        out[name] = row
    return out


def results_table(results: dict[str, dict]) -> str:
    """Markdown: a row per model with both test parts, the paper's number, recall, rounds, speed."""
    from pipeline.reporting.paper_results import MAIN

    def pct(part: dict | None) -> str:
        return "-" if part is None else f"{100 * part['accuracy']:.2f}"

    lines = ["| model | parameters | PublicTest % | PrivateTest % | paper % | per-class recall % | rounds | "
             "train images/s |", "|---|---:|---:|---:|---:|---|---:|---:|"]
    for name, row in results.items():
        paper = MAIN.get((name, DATASET))
        part = row["PrivateTest"] or row["PublicTest"]
        recall = " ".join(f"{c[:3]} {100 * r:.0f}" for c, r in part["recall"].items())
        where = "PrivateTest" if row["PrivateTest"] else "PublicTest"
        rounds = "-" if row["rounds"] is None else f"{row['rounds']} (best {row['best_round']})"
        speed = "-" if not row["images_per_second"] else f"{row['images_per_second']:.0f}"
        lines.append(f"| {name} | {row['params']:,} | {pct(row['PublicTest'])} | {pct(row['PrivateTest'])} | "
                     f"{'-' if paper is None else f'{paper[0]:.2f}'} | {where}: {recall} | {rounds} | {speed} |")
    return "\n".join(lines)


def publish(runs: dict[str, Path], work: Path, params_file: Path, argv: list[str] | None) -> None:
    """``fer-pipeline publish`` of the distilled EAN (else the last run) as ``ean``, with the shards it
    was trained on and this command line in its provenance; the run's params (the fer2013 profile)
    give its predict spec."""
    from pipeline.cli import main
    from pipeline.training.runs import DISTILLED

    name, run_dir = (DISTILLED, runs[DISTILLED]) if DISTILLED in runs else list(runs.items())[-1]
    model = "ean" if name in ("ean", DISTILLED) else name
    command = " ".join(["python", "bench/fer2013.py", *(sys.argv[1:] if argv is None else argv)])
    rc = main(["publish", "--checkpoint", str(run_dir / "checkpoint.pt"), "--name", model,
               "--shards", str(work / "processed" / DATASET), "--command", command, "--params", str(params_file)])
    if rc != 0:
        raise SystemExit(f"fer-pipeline publish of {run_dir} failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, type=Path, help="a FER2013 folder (CSVs or train/ and test/ image folders)")
    parser.add_argument("--models", default="ean",
                        help="comma-separated recipes of the profile to train (default ean; with ean, the distilled "
                        "EAN is added unless --no-distill)")
    parser.add_argument("--no-distill", action="store_true", help="skip EAN's distillation")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="base params (demo profile)")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one); "
                        "re-running with the same --work reuses finished stages, epochs and rounds")
    parser.add_argument("--publish", action="store_true",
                        help="ship the distilled EAN (else the last model) inside fer_models as the default model of "
                        "predict (fer-pipeline publish; writes fer_models/weights/ean.pt and ean.json)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one params key over the profile, as `dvc exp run --set-param` (repeatable; "
                        "e.g. distill.fer2013.optimizer.lr=0.01): a lever tried in its own --work")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests only
    parser.add_argument("--rounds", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests only
    args = parser.parse_args(argv)
    if not args.raw.is_dir():
        parser.error(f"--raw {args.raw}: not a directory")

    import torch
    import yaml

    from pipeline.profiles import ProfileError

    torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        params = bench_params(args.params, args.epochs, args.rounds, args.set)
    except ProfileError as exc:
        parser.error(str(exc))
    unknown = [m for m in models if m not in params["train"]]
    if unknown:
        parser.error(f"--models: no recipe train.{unknown[0]} in the fer2013 profile")
    tmp = tempfile.TemporaryDirectory(prefix="fer2013-bench-") if args.work is None else None
    work = Path(tmp.name) if tmp else args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        params_file = work / "params.yaml"
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        load0, t0 = os.getloadavg()[0], time.perf_counter()
        stages = data_stages(args.raw.resolve(), work, params_file)
        summary = stages["ingest"]["summary"]
        print(f"FER2013 at {args.raw}: read {summary['read']} = kept {summary['kept']} + quarantined "
              f"{summary['quarantined']}; per class: "
              + ", ".join(f"{c} {n}" for c, n in summary.get("per_class", {}).items())
              + "; per source split: " + ", ".join(f"{s} {n}" for s, n in summary.get("per_source_split", {}).items()))
        for name in ("ingest", "align", "shard"):
            s = stages[name]
            print(f"  {name:<6} {s['images']:>6} images  {s['seconds']:7.1f} s  peak RSS {s['peak_rss_mb']:7.0f} MB")
        print(f"  data stages together {sum(stages[n]['seconds'] for n in ('ingest', 'align', 'shard')):.1f} s")
        runs = train_models(models, "ean" in models and not args.no_distill, work, params_file, params)
        results = score_runs(runs, work / "processed", int(params["evaluate"]["batch_size"]))
        (work / "results.json").write_text(json.dumps(results, indent=2))
        print()
        print(f"FER2013, paper protocol (train on Training; choices on PublicTest; ten-crop accuracy), "
              f"{args.threads} torch threads:")
        print(results_table(results))
        if args.publish:
            publish(runs, work, params_file, argv)
        print(f"whole run {time.perf_counter() - t0:.0f} s in this invocation; load average {load0:.1f} at start, "
              f"{os.getloadavg()[0]:.1f} at end ({os.cpu_count()} cores); outputs in {work}"
              + (" (temporary)" if tmp else ""))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
