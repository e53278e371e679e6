"""A small generated DVC pipeline for the rebuild flow's tests (and the README's screenshot).

``make_repo(root, datasets)`` writes a git + DVC repository shaped like the project's pipeline,
cut to what the flow needs and quick to run (each stage a fraction of a second plus DVC's own
start-up): per dataset a DVC-tracked raw folder (``data/raw/<ds>.dvc``), ``ingest@<ds>`` (writes
``data/interim/<ds>/summary.json`` with read / kept / quarantined), ``align@<ds>`` (runs its
chunks through :func:`pipeline.runner.flows.run_chunks`, as the real align does, and writes
``data/aligned/<ds>/summary.json`` with ``per_outcome`` and ``detection_rate``), then ``report``
(``reports/results.md``, a table of every dataset). Raw data is a list of image names:
``face…`` is detected, ``blur…`` falls back, ``bad…`` is quarantined by ingest, and one of these
words makes ``ingest`` fail:

* ``FAIL`` — bad input: exits 2 at once;
* ``FLAKY`` — a transient error: exits 75 (EX_TEMPFAIL) on its first attempt, then succeeds
  (attempts are counted in ``$SMALL_PIPELINE_COUNTERS``);
* ``SLEEP`` — takes half a second (so that concurrent stages overlap measurably).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent

STAGES_PY = r'''"""Stages of the small generated pipeline (see tests/runner/small_dvc_pipeline.py)."""
import json
import os
import sys
import time
from functools import partial
from pathlib import Path


def ingest(ds):
    names = Path(f"data/raw/{ds}/images.txt").read_text().split()
    if "FAIL" in names:
        print(f"data/raw/{ds}/images.txt: FAIL is not an image name", file=sys.stderr)
        sys.exit(2)
    if "FLAKY" in names:
        counter = Path(os.environ["SMALL_PIPELINE_COUNTERS"]) / f"ingest-{ds}"
        attempt = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(attempt))
        if attempt == 1:
            print(f"ingest {ds}: transient error (attempt {attempt})", file=sys.stderr)
            sys.exit(75)
    if "SLEEP" in names:
        time.sleep(0.5)
    images = [n for n in names if n not in ("FAIL", "FLAKY", "SLEEP")]
    kept = [n for n in images if not n.startswith("bad")]
    out = Path(f"data/interim/{ds}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.txt").write_text("\n".join(kept) + "\n")
    summary = {"dataset": ds, "read": len(images), "kept": len(kept), "quarantined": len(images) - len(kept)}
    (out / "summary.json").write_text(json.dumps(summary))
    print(f"{ds}: read {len(images)} = kept {len(kept)} + quarantined {len(images) - len(kept)}")


def detect(chunk, *, ds):
    return ["detected" if n.startswith("face") else "fallback" for n in chunk]


def align(ds):
    from pipeline.runner.flows import run_chunks

    names = Path(f"data/interim/{ds}/manifest.txt").read_text().split()
    chunks = [names[i:i + 2] for i in range(0, len(names), 2)]
    outcomes = [o for part in run_chunks(f"align-{ds}", partial(detect, ds=ds), chunks,
                                         runner={"kind": "threads", "max_workers": 1},
                                         retries=0, retry_delay_seconds=0) for o in part]
    per = {o: outcomes.count(o) for o in ("detected", "precropped", "fallback", "quarantined")}
    out = Path(f"data/aligned/{ds}")
    out.mkdir(parents=True, exist_ok=True)
    rate = per["detected"] / len(outcomes) if outcomes else None
    (out / "summary.json").write_text(json.dumps({"dataset": ds, "per_outcome": per, "detection_rate": rate}))


def report(*datasets):
    lines = ["# Results", "", "| dataset | detected | fallback | detection rate |", "|---|---:|---:|---:|"]
    for ds in datasets:
        s = json.loads(Path(f"data/aligned/{ds}/summary.json").read_text())
        p = s["per_outcome"]
        lines.append(f"| {ds} | {p['detected']} | {p['fallback']} | {s['detection_rate']:.2f} |")
    Path("reports").mkdir(exist_ok=True)
    Path("reports/results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
'''


def dvc_yaml(datasets: list[str]) -> str:
    aligned = "".join(f"      - data/aligned/{ds}\n" for ds in datasets)
    return f"""stages:
  ingest:
    foreach: ${{datasets}}
    do:
      cmd: python stages.py ingest ${{item}}
      deps:
        - data/raw/${{item}}
        - stages.py
      outs:
        - data/interim/${{item}}
  align:
    foreach: ${{datasets}}
    do:
      cmd: python stages.py align ${{item}}
      deps:
        - data/interim/${{item}}
        - stages.py
      outs:
        - data/aligned/${{item}}
  report:
    cmd: python stages.py report {' '.join(datasets)}
    deps:
{aligned}      - stages.py
    outs:
      - reports/results.md
"""


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def sh(*cmd: str, cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}")
    return proc.stdout


def write_raw(repo: Path, raw: dict[str, list[str]]) -> None:
    """``data/raw/<ds>/images.txt`` := the names of each dataset, and ``dvc add`` them (as ``make
    repro`` does: each folder becomes a data source, ``data/raw/<ds>.dvc``)."""
    for ds, names in raw.items():
        folder = repo / "data" / "raw" / ds
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "images.txt").write_text("\n".join(names) + "\n")
    sh("dvc", "add", "-q", *(f"data/raw/{ds}" for ds in raw), cwd=repo)


def make_repo(root: Path, raw: dict[str, list[str]], remote: Path | None = None) -> Path:
    """The pipeline over ``raw`` (dataset -> image names) in ``root/repo``, committed, nothing run."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    sh("git", "init", "-q", cwd=repo)
    sh("git", "config", "user.email", "t@example.com", cwd=repo)
    sh("git", "config", "user.name", "t", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    sh("dvc", "config", "core.analytics", "false", cwd=repo)
    (repo / "stages.py").write_text(STAGES_PY)
    (repo / "params.yaml").write_text("datasets:\n" + "".join(f"  - {ds}\n" for ds in raw))
    (repo / "dvc.yaml").write_text(dvc_yaml(list(raw)))
    write_raw(repo, raw)
    if remote is not None:
        sh("dvc", "remote", "add", "-d", "store", str(remote), cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "small pipeline", cwd=repo)
    return repo
