"""fer-pipeline serve: the cron deployment exists, a scheduled run pulls, reproduces and pushes.

The rebuild flow is exercised on a one-stage DVC repository (the real pipeline's repro is
tests/test_dvc_pipeline.py's business); ``fer-pipeline serve`` runs as a real subprocess against
the session's test Prefect server (``prefect_harness``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.runner import flows  # noqa: F401  (Prefect env defaults)

pytestmark = pytest.mark.usefixtures("prefect_harness")

BIN = Path(sys.executable).parent
CRON = "0 3 * * *"


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def sh(*cmd: str, cwd: Path) -> str:
    return subprocess.run(cmd, cwd=cwd, env=env(), check=True, text=True, capture_output=True).stdout


def make_repo(root: Path, remote: Path | None) -> Path:
    """A git + DVC repository with one stage (copy in.txt -> out.txt), optionally a default remote."""
    repo = root / "repo"
    repo.mkdir()
    sh("git", "init", "-q", cwd=repo)
    sh("git", "config", "user.email", "t@example.com", cwd=repo)
    sh("git", "config", "user.name", "t", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    (repo / "in.txt").write_text("hello\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n  copy:\n    cmd: cp in.txt out.txt\n    deps:\n      - in.txt\n    outs:\n      - out.txt\n")
    if remote is not None:
        sh("dvc", "remote", "add", "-d", "store", str(remote), cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "init", cwd=repo)
    return repo


def remote_files(remote: Path) -> list[Path]:
    return [p for p in remote.rglob("*") if p.is_file()] if remote.exists() else []


def task_runs(flow_run_id) -> dict[str, object]:
    """The flow run's task runs by name prefix (dvc-pull, dvc-repro, dvc-push)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name.rsplit("-", 1)[0]: r for r in runs}


def test_served_deployment_has_cron_and_a_run_reproduces_and_pushes(tmp_path, prefect_harness):
    from prefect import get_client
    from prefect.deployments import run_deployment

    remote = tmp_path / "remote"
    repo = make_repo(tmp_path, remote)
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "fer-pipeline"), "serve", "--cron", CRON, "--repo", str(repo)],
        cwd=tmp_path, env=env(PREFECT_API_URL=prefect_harness, PREFECT_RUNNER_POLL_FREQUENCY="1"),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deployment = None
        deadline = time.monotonic() + 90
        with get_client(sync_client=True) as client:
            while deployment is None and time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    deployment = client.read_deployment_by_name("fer-pipeline-rebuild/nightly")
                except Exception:  # not registered yet
                    time.sleep(0.5)
        assert deployment is not None, "deployment not registered within 90 s"
        assert [s.schedule.cron for s in deployment.schedules] == [CRON]
        assert deployment.schedules[0].active
        assert deployment.parameters["repo"] == str(repo)
        assert deployment.entrypoint == "pipeline.runner.rebuild.rebuild"

        # run the scheduled flow once, now, through the served process
        flow_run = run_deployment("fer-pipeline-rebuild/nightly", timeout=240)
        assert flow_run.state.is_completed(), (flow_run.state, (tmp_path / "serve.log").read_text())
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()

    runs = task_runs(flow_run.id)
    assert {name: r.state.type.value for name, r in runs.items()} == {
        "dvc-pull": "COMPLETED", "dvc-repro": "COMPLETED", "dvc-push": "COMPLETED"}
    assert (repo / "out.txt").read_text() == "hello\n"
    assert "out.txt" in (repo / "dvc.lock").read_text()
    assert remote_files(remote), "nothing pushed"
    status = sh("dvc", "status", "--cloud", cwd=repo)
    assert "in sync" in status, status


def test_without_remote_pull_and_push_are_skipped_and_second_run_reproduces_nothing(tmp_path):
    from pipeline.runner.rebuild import SKIPPED, rebuild

    repo = make_repo(tmp_path, remote=None)
    first = rebuild(repo=str(repo))
    assert first == {"pull": SKIPPED, "repro": "1 stage(s) ran", "push": SKIPPED}
    assert rebuild(repo=str(repo))["repro"] == "0 stage(s) ran"


def test_failing_push_is_retried_then_fails_the_run(tmp_path):
    from pipeline.runner.rebuild import rebuild

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the remote directory should be\n")
    repo = make_repo(tmp_path, remote=blocker / "store")
    state = rebuild(repo=str(repo), network_retries=2, retry_delay_seconds=0, return_state=True)
    assert state.is_failed()
    runs = task_runs(state.state_details.flow_run_id)
    assert runs["dvc-repro"].state.is_completed()
    assert runs["dvc-push"].state.is_failed()
    assert runs["dvc-push"].run_count == 3  # first attempt + 2 retries
