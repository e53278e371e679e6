"""What a rebuild produced, as Prefect artifacts (the run page's Artifacts tab, and the Artifacts
page, where each key keeps its history from night to night).

* ``fer-pipeline-stages`` (table): every stage of the run, its outcome, seconds and a note;
* ``fer-pipeline-results`` (markdown): ``reports/results.md``, the results table;
* ``fer-pipeline-datasets`` (table): per dataset, ingest's accounting (read = kept +
  quarantined, ``data/interim/<dataset>/summary.json``) and align's outcomes and MTCNN
  detection rate (``data/aligned/<dataset>/summary.json``);
* ``fer-pipeline-commit`` (link): the git commit the run built, with a web link when the
  ``origin`` remote is a web host, and whether ``dvc.lock`` changed (commit it to publish).

The builders read files and return plain rows, so they are tested without Prefect; only
:func:`publish` talks to the API.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pipeline.runner.stage_task import StageResult

RESULTS = Path("reports/results.md")
KEYS = {"stages": "fer-pipeline-stages", "results": "fer-pipeline-results",
        "datasets": "fer-pipeline-datasets", "commit": "fer-pipeline-commit"}
ALIGN_OUTCOMES = ("detected", "precropped", "fallback", "quarantined")


def stage_rows(results: Sequence[StageResult]) -> list[dict[str, Any]]:
    """One row per stage, in run order: stage, outcome, seconds, note."""
    return [{"stage": r.stage, "outcome": r.outcome, "seconds": round(r.seconds, 1), "note": r.note}
            for r in results]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def datasets_of(repo: Path) -> list[str]:
    """The datasets of params.yaml (``datasets``), else those with an ingest summary."""
    try:
        listed = (yaml.safe_load((repo / "params.yaml").read_text()) or {}).get("datasets")
    except (OSError, yaml.YAMLError, AttributeError):
        listed = None
    if isinstance(listed, list) and listed:
        return [str(d) for d in listed]
    return sorted(p.parent.name for p in (repo / "data/interim").glob("*/summary.json"))


def dataset_rows(repo: Path) -> list[dict[str, Any]]:
    """Per dataset: read / kept / quarantined (ingest) and align's outcomes and detection rate.

    A dataset whose summary is missing (its stage failed or never ran) has empty cells.
    """
    rows = []
    for ds in datasets_of(repo):
        ingest = _read_json(repo / "data/interim" / ds / "summary.json") or {}
        align = _read_json(repo / "data/aligned" / ds / "summary.json") or {}
        outcomes = align.get("per_outcome") or {}
        rate = align.get("detection_rate")
        rows.append({
            "dataset": ds,
            "read": ingest.get("read"),
            "kept": ingest.get("kept"),
            "quarantined": ingest.get("quarantined"),
            **{f"align {o}": outcomes.get(o) for o in ALIGN_OUTCOMES},
            "detection rate": None if rate is None else round(float(rate), 4),
        })
    return rows


def results_markdown(repo: Path, report_outcome: str | None) -> str:
    """``reports/results.md``, headed by what the ``report`` stage did in this run."""
    path = repo / RESULTS
    if report_outcome is None:
        head = "The `report` stage was not part of this run."
    else:
        head = f"`report` stage in this run: **{report_outcome}**."
    if not path.is_file():
        return f"{head}\n\nNo `{RESULTS}` in the workspace."
    return f"{head}\n\n{path.read_text()}"


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, text=True, capture_output=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def web_url(remote: str) -> str | None:
    """The web address of a git remote (``git@host:org/repo.git``, ``https://host/org/repo.git``,
    ``ssh://git@host/org/repo``), or None for a path or another scheme."""
    m = re.match(r"^(?:ssh://)?[\w.-]+@([\w.-]+)[:/](.+?)(?:\.git)?/?$", remote)
    if m:
        return f"https://{m.group(1)}/{m.group(2)}"
    m = re.match(r"^https?://(?:[^@/]+@)?([^/]+)/(.+?)(?:\.git)?/?$", remote)
    return f"https://{m.group(1)}/{m.group(2)}" if m else None


def commit_link(repo: Path) -> tuple[str, str]:
    """``(url, text)`` of the commit the run built: the web page of the commit when ``origin`` is
    a web host (GitHub, GitLab, Gitea: ``<repo>/commit/<sha>``), else a ``file://`` link to the
    repository; the text says whether dvc.lock changed (uncommitted results)."""
    sha = _git(repo, "rev-parse", "HEAD")
    base = web_url(_git(repo, "remote", "get-url", "origin"))
    lock_changed = bool(_git(repo, "status", "--porcelain", "--", "dvc.lock"))
    if not sha:
        return repo.resolve().as_uri(), f"{repo} (no git commit yet)"
    url = f"{base}/commit/{sha}" if base else repo.resolve().as_uri()
    text = f"commit {sha[:10]}" + (" + uncommitted dvc.lock (commit it to publish this run)" if lock_changed else "")
    return url, text


def publish(repo: Path, results: Sequence[StageResult]) -> None:
    """Create the run's four artifacts (inside a flow run)."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    outcomes = {r.stage: r.outcome for r in results}
    create_table_artifact(stage_rows(results), key=KEYS["stages"],
                          description="Each DVC stage of this run: outcome and seconds")
    create_markdown_artifact(results_markdown(repo, outcomes.get("report")), key=KEYS["results"],
                             description=f"{RESULTS} after this run")
    create_table_artifact(dataset_rows(repo), key=KEYS["datasets"],
                          description="Per dataset: ingest read = kept + quarantined; align outcomes and MTCNN detection rate")
    url, text = commit_link(repo)
    create_link_artifact(url, link_text=text, key=KEYS["commit"], description="What this run built")
