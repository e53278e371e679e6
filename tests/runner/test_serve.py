"""fer-pipeline serve: the cron deployment exists with its parameters, a scheduled run pulls,
reproduces and pushes; ``--param`` and ``--now`` errors are one line.

The remote is exercised on a one-stage DVC repository (the stage graph is test_rebuild.py's
business, the real pipeline's repro tests/test_dvc_pipeline.py's); ``fer-pipeline serve`` runs as a
real subprocess against the session's test Prefect server (``prefect_harness``).
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


def task_runs(flow_run_id, expected: int = 3, timeout: float = 60.0) -> dict[str, object]:
    """The flow run's task runs by name (``dvc-pull``, ``dvc-push`` without their suffix; a stage's
    task run is named after the stage), once ``expected`` of them are final in the API (task
    states arrive as events, a moment after the flow returns)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            final = [r for r in runs if r.state and r.state.is_final()]
            if len(final) >= expected or time.monotonic() > deadline:
                return {(r.name.rsplit("-", 1)[0] if r.name.startswith("dvc-") else r.name): r for r in final}
            time.sleep(0.2)


def test_served_deployment_has_cron_and_a_run_reproduces_and_pushes(tmp_path, prefect_harness):
    from prefect import get_client
    from prefect.deployments import run_deployment

    remote = tmp_path / "remote"
    repo = make_repo(tmp_path, remote)
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "fer-pipeline"), "serve", "--cron", CRON, "--repo", str(repo),
         "--param", "targets=copy", "--param", "stage_retries=1"],
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
        assert deployment.parameters == {"repo": str(repo), "targets": "copy", "stage_retries": 1}
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
    assert {name: r.state.name for name, r in runs.items()} == {
        "dvc-pull": "Completed", "copy": "Completed", "dvc-push": "Completed"}
    assert (repo / "out.txt").read_text() == "hello\n"
    assert "out.txt" in (repo / "dvc.lock").read_text()
    assert remote_files(remote), "nothing pushed"
    status = sh("dvc", "status", "--cloud", cwd=repo)
    assert "in sync" in status, status


def test_without_remote_pull_and_push_are_skipped_and_second_run_reproduces_nothing(tmp_path):
    from pipeline.runner.rebuild import SKIPPED_BY_PARAMETER, SKIPPED_NO_REMOTE, rebuild

    repo = make_repo(tmp_path, remote=None)
    first = rebuild(repo=str(repo))
    assert first == {"pull": SKIPPED_NO_REMOTE, "stages": {"copy": "Completed"}, "push": SKIPPED_NO_REMOTE}
    second = rebuild(repo=str(repo), push=False)
    assert second == {"pull": SKIPPED_NO_REMOTE, "stages": {"copy": "Skipped"}, "push": SKIPPED_BY_PARAMETER}


def test_failing_push_is_retried_then_fails_the_run(tmp_path):
    from pipeline.runner.rebuild import rebuild

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the remote directory should be\n")
    repo = make_repo(tmp_path, remote=blocker / "store")
    state = rebuild(repo=str(repo), network_retries=2, retry_delay_seconds=0, return_state=True)
    assert state.is_failed()
    assert state.message.startswith("dvc push failed:")
    runs = task_runs(state.state_details.flow_run_id)
    assert runs["copy"].state.is_completed()
    assert runs["dvc-push"].state.is_failed()
    assert runs["dvc-push"].run_count == 3  # first attempt + 2 retries


@pytest.mark.parametrize("param, message", [
    ("nope=1", "--param nope: unknown parameter (known: profile, targets, push,"),
    ("push", "--param 'push': expected KEY=VALUE"),
    ("push=maybe", "--param push='maybe': Input should be a valid boolean"),
    ("max_parallel_stages=two", "--param max_parallel_stages='two': Input should be a valid integer"),
])
def test_a_bad_param_is_one_line_and_exit_2(param, message, capsys):
    from pipeline.cli import main

    assert main(["serve", "--now", "--param", param]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fer-pipeline serve: error: {message}") and err.count("\n") == 1, err


def test_params_are_read_as_yaml():
    from pipeline.commands.serve import parse_params

    assert parse_params(["push=false", "targets=align@*,report", "max_parallel_stages=2", "profile=paper",
                         "webhook_url=http://127.0.0.1:9/x"]) == {
        "push": False, "targets": "align@*,report", "max_parallel_stages": 2, "profile": "paper",
        "webhook_url": "http://127.0.0.1:9/x"}
    assert parse_params(["targets=[ingest@jaffe, report]"]) == {"targets": ["ingest@jaffe", "report"]}


def test_now_with_a_failing_run_exits_1_with_one_line(tmp_path, capsys):
    from pipeline.cli import main

    repo = make_repo(tmp_path, remote=None)
    assert main(["serve", "--now", "--repo", str(repo), "--param", "targets=nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("fer-pipeline serve: rebuild Failed: Flow run encountered an exception: "
                       "GraphError: target 'nope' matches no DVC stage (stages: copy)"), err


@pytest.mark.parametrize("exc, code", [(ConnectionResetError("peer reset"), 75), (TimeoutError("slow NFS"), 75)])
def test_a_transient_io_error_exits_75_so_the_rebuild_retries_the_stage(exc, code, monkeypatch, capsys):
    import pipeline.commands.profile as profile
    from pipeline.cli import main

    def boom(args):
        raise exc

    monkeypatch.setattr(profile, "run", boom)
    assert main(["profile"]) == code
    assert capsys.readouterr().err == f"fer-pipeline profile: transient error (a retry may succeed): {exc}\n"


def test_other_errors_are_not_turned_into_75(monkeypatch):
    import pipeline.commands.profile as profile
    from pipeline.cli import main

    def boom(args):
        raise FileNotFoundError("data/raw/x: no such file")

    monkeypatch.setattr(profile, "run", boom)
    with pytest.raises(FileNotFoundError):
        main(["profile"])
