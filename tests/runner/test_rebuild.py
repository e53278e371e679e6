"""The rebuild flow: one Prefect task per DVC stage, in dependency order, skipped when up to date,
failures contained to their dependants, artifacts, the failure webhook, subflows, concurrency.

Runs on the small generated pipeline of :mod:`small_dvc_pipeline` (two datasets: raw data ->
ingest -> align -> report) under the session's test Prefect server; what the flow did is read
back from the Prefect API, as the UI would show it. The project's own dvc.yaml is only read.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from pipeline.runner import flows  # noqa: F401  (Prefect env defaults)
from small_dvc_pipeline import make_repo, sh

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROOT = Path(__file__).resolve().parents[2]
RAW = {"d1": ["face1", "face2", "blur1", "bad1"], "d2": ["face3", "blur2"]}
ORDER = ("data/raw/d1.dvc", "data/raw/d2.dvc", "ingest@d1", "ingest@d2", "align@d1", "align@d2", "report")
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


class Webhook:
    """An HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""

    def __init__(self):
        self.posts: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append({"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/fer"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def stage_runs(flow_run_id, expected: int, timeout: float = 60.0) -> dict:
    """The flow run's stage task runs by stage name, once ``expected`` of them reached a final
    state in the API (task states arrive as events, a moment after the flow returns)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterTags

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                         task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=["dvc-stage"])))
            done = {r.name: r for r in runs if r.state and r.state.type.value in FINAL}
            if len(done) >= expected or time.monotonic() > deadline:
                return done
            time.sleep(0.2)


def artifacts(flow_run_id) -> dict:
    """The flow run's artifacts by key: (type, data)."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    out = {}
    for a in arts:
        data = a.data
        if a.type == "table" and isinstance(data, str):
            data = json.loads(data)
        out[a.key] = (a.type, data)
    return out


def run(repo: Path, **params):
    from pipeline.runner.rebuild import rebuild

    return rebuild(repo=str(repo), return_state=True, retry_delay_seconds=0, **params)


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness):
    """The small pipeline run once from scratch (webhook configured, nothing fails)."""
    hook = Webhook()
    repo = make_repo(tmp_path_factory.mktemp("rebuild"), RAW)
    state = run(repo, webhook_url=hook.url)
    runs = stage_runs(state.state_details.flow_run_id, len(ORDER))
    yield {"repo": repo, "state": state, "runs": runs, "hook": hook}
    hook.close()


def test_one_task_run_per_stage_in_dependency_order(built):
    from pipeline.runner.dvc_graph import read_graph

    assert built["state"].is_completed(), built["state"].message
    runs = built["runs"]
    graph = read_graph(built["repo"])
    assert graph.order == ORDER
    assert set(runs) == set(ORDER)
    started = sorted(runs.values(), key=lambda r: r.start_time or r.expected_start_time)
    assert tuple(r.name for r in started) == ORDER  # one stage at a time (max_parallel_stages=1)
    for name in ORDER:
        for up in graph.upstream[name]:
            assert runs[up].end_time <= (runs[name].start_time or runs[name].expected_start_time), (up, name)
        # the edges Prefect records (and the UI draws) are exactly DVC's
        edges = {i.id for inputs in runs[name].task_inputs.values() for i in inputs if hasattr(i, "id")}
        assert edges == {runs[up].id for up in graph.upstream[name]}, name
    states = {name: (r.state.type.value, r.state.name) for name, r in runs.items()}
    assert states == {"data/raw/d1.dvc": ("COMPLETED", "Skipped"), "data/raw/d2.dvc": ("COMPLETED", "Skipped"),
                      **{s: ("COMPLETED", "Completed") for s in ORDER[2:]}}
    # DVC did the work: every stage is in dvc.lock and nothing is stale
    assert "Data and pipelines are up to date" in sh("dvc", "status", cwd=built["repo"])
    assert built["state"].result()["stages"] == {name: state for name, (_, state) in states.items()}


def test_artifacts_hold_results_accounting_stages_and_commit(built):
    arts = artifacts(built["state"].state_details.flow_run_id)
    assert set(arts) == {"fer-pipeline-stages", "fer-pipeline-results", "fer-pipeline-datasets", "fer-pipeline-commit"}
    kind, rows = arts["fer-pipeline-datasets"]
    assert kind == "table"
    assert rows == [
        {"dataset": "d1", "read": 4, "kept": 3, "quarantined": 1, "align detected": 2, "align precropped": 0,
         "align fallback": 1, "align quarantined": 0, "detection rate": 0.6667},
        {"dataset": "d2", "read": 2, "kept": 2, "quarantined": 0, "align detected": 1, "align precropped": 0,
         "align fallback": 1, "align quarantined": 0, "detection rate": 0.5},
    ]
    kind, md = arts["fer-pipeline-results"]
    assert kind == "markdown"
    assert "`report` stage in this run: **Completed**" in md
    assert (built["repo"] / "reports/results.md").read_text() in md
    assert "| d1 | 2 | 1 | 0.67 |" in md
    kind, rows = arts["fer-pipeline-stages"]
    assert [r["stage"] for r in rows] == list(ORDER)
    assert [r["outcome"] for r in rows] == ["Skipped"] * 2 + ["Completed"] * 5
    assert all(r["seconds"] > 0 for r in rows[2:])
    kind, link = arts["fer-pipeline-commit"]
    sha = sh("git", "rev-parse", "HEAD", cwd=built["repo"]).strip()
    assert kind == "markdown" and built["repo"].resolve().as_uri() in link  # a link artifact renders as markdown
    assert f"commit {sha[:10]} + uncommitted dvc.lock" in link


def test_chunk_flows_are_subflows_of_their_stage_task(built):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    runs = built["runs"]
    parent = built["state"].state_details.flow_run_id
    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])))
        by_stage = {}
        for sub in subflows:
            tracker = client.read_task_run(sub.parent_task_run_id)
            assert tracker.flow_run_id == parent
            (encloser,) = tracker.task_inputs["__parents__"]
            by_stage.setdefault(encloser.id, []).append((client.read_flow(sub.flow_id).name, sub.state.type.value))
    assert by_stage == {runs["align@d1"].id: [("align-d1", "COMPLETED")],
                        runs["align@d2"].id: [("align-d2", "COMPLETED")]}


def test_webhook_not_called_when_the_run_succeeds(built):
    assert built["hook"].posts == []


def test_second_run_skips_everything_then_a_changed_dataset_reruns_only_its_stages(built):
    state = run(built["repo"])
    assert state.is_completed()
    assert set(state.result()["stages"].values()) == {"Skipped"}
    # new raw data for d2 (not yet `dvc add`ed): its data source, its stages and the report re-run
    (built["repo"] / "data/raw/d2/images.txt").write_text("face3\nface4\nblur2\n")
    state = run(built["repo"])
    assert state.result()["stages"] == {
        "data/raw/d2.dvc": "Completed", "ingest@d2": "Completed", "align@d2": "Completed", "report": "Completed",
        "data/raw/d1.dvc": "Skipped", "ingest@d1": "Skipped", "align@d1": "Skipped"}
    assert "| d2 | 2 | 1 | 0.67 |" in (built["repo"] / "reports/results.md").read_text()
    assert "Data and pipelines are up to date" in sh("dvc", "status", cwd=built["repo"])
    # outputs deleted: DVC restores them from its run-cache instead of running the stage again
    shutil.rmtree(built["repo"] / "data/interim/d1")
    state = run(built["repo"], targets="ingest@d1")
    assert state.result()["stages"] == {"data/raw/d1.dvc": "Skipped", "ingest@d1": "Cached"}
    assert json.loads((built["repo"] / "data/interim/d1/summary.json").read_text())["read"] == 4


def test_a_failed_stage_stops_its_dependants_only_and_the_webhook_is_called_once(tmp_path, webhook, monkeypatch):
    counters = tmp_path / "counters"
    counters.mkdir()
    monkeypatch.setenv("SMALL_PIPELINE_COUNTERS", str(counters))
    # d1: a transient error on the first attempt (retried); d2: bad input (not retried)
    repo = make_repo(tmp_path, {"d1": ["face1", "FLAKY", "blur1"], "d2": ["face2", "FAIL"]})
    state = run(repo, webhook_url=webhook.url, stage_retries=2)
    assert state.is_failed()
    assert state.message == "1 stage(s) failed: ingest@d2; not run: align@d2, report"
    runs = stage_runs(state.state_details.flow_run_id, len(ORDER))
    states = {name: (r.state.type.value, r.state.name) for name, r in runs.items()}
    assert states["ingest@d1"] == ("COMPLETED", "Completed") and runs["ingest@d1"].run_count == 2
    assert states["align@d1"] == ("COMPLETED", "Completed")
    assert states["ingest@d2"][0] == "FAILED" and runs["ingest@d2"].run_count == 1
    assert states["align@d2"] == ("CANCELLED", "NotRun") and states["report"] == ("CANCELLED", "NotRun")
    assert {i.id for i in runs["align@d2"].task_inputs["after"]} == {runs["ingest@d2"].id}  # drawn from the failure
    assert json.loads((repo / "data/interim/d1/summary.json").read_text())["kept"] == 2
    assert not (repo / "data/interim/d2").exists()

    assert len(webhook.posts) == 1
    post = webhook.posts[0]
    assert post["path"] == "/hooks/fer" and post["type"] == "application/json"
    body = post["json"]
    assert body["flow"] == "fer-pipeline-rebuild" and body["state"] == "Failed"
    assert body["failed"] == ["ingest@d2"] and body["not_run"] == ["align@d2", "report"]
    assert body["repo"] == str(repo.resolve()) and body["flow_run_id"] == str(state.state_details.flow_run_id)

    arts = artifacts(state.state_details.flow_run_id)
    rows = {r["stage"]: r for r in arts["fer-pipeline-stages"][1]}
    assert rows["ingest@d2"]["outcome"] == "Failed" and "exited" in rows["ingest@d2"]["note"]
    assert rows["report"]["note"] == "not run: align@d2 did not complete"
    assert arts["fer-pipeline-datasets"][1][1] == {
        "dataset": "d2", "read": None, "kept": None, "quarantined": None, "align detected": None,
        "align precropped": None, "align fallback": None, "align quarantined": None, "detection rate": None}
    assert "`report` stage in this run: **NotRun**" in arts["fer-pipeline-results"][1]


def test_independent_stages_run_concurrently_up_to_the_limit_and_targets_select(tmp_path):
    repo = make_repo(tmp_path, {"d1": ["face1", "SLEEP"], "d2": ["face2", "SLEEP"], "d3": ["face3", "SLEEP"]})
    state = run(repo, targets="ingest@*", max_parallel_stages=2)
    assert state.is_completed(), state.message
    runs = stage_runs(state.state_details.flow_run_id, 6)
    assert set(runs) == {"data/raw/d1.dvc", "data/raw/d2.dvc", "data/raw/d3.dvc", "ingest@d1", "ingest@d2", "ingest@d3"}
    ingest = sorted((runs[f"ingest@{d}"] for d in ("d1", "d2", "d3")), key=lambda r: r.start_time)
    assert ingest[1].start_time < ingest[0].end_time  # the first two overlapped ...
    assert ingest[2].start_time >= min(ingest[0].end_time, ingest[1].end_time)  # ... the third waited for a slot
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"ingest@d1", "ingest@d2", "ingest@d3"}  # DVC serialised its own bookkeeping
    status = sh("dvc", "status", "ingest@d1", "ingest@d2", "ingest@d3", cwd=repo)
    assert "up to date" in status, status


def test_a_target_matching_no_stage_fails_with_one_line(built, webhook):
    state = run(built["repo"], targets=["align@*", "train@*"], webhook_url=webhook.url)
    assert state.is_failed()
    assert state.message.endswith("target 'train@*' matches no DVC stage (stages: data/raw/d1.dvc, "
                                  "data/raw/d2.dvc, ingest@d1, ingest@d2, align@d1, align@d2, report)")
    assert len(webhook.posts) == 1 and webhook.posts[0]["json"]["failed"] == []


def test_the_projects_own_graph_reads_in_dependency_order():
    from pipeline.runner.dvc_graph import read_graph

    graph = read_graph(ROOT)
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    pos = {name: i for i, name in enumerate(graph.order)}
    datasets = yaml.safe_load((ROOT / "params.yaml").read_text())["datasets"]
    for ds in datasets:
        assert pos[f"ingest@{ds}"] < pos[f"align@{ds}"] < pos[f"shard@{ds}"]
    assert graph.order[-1] == "report" and set(declared) >= {"ingest", "align", "shard", "report"}
    for name in graph.order:  # every stage after everything it depends on
        assert all(pos[up] < pos[name] for up in graph.upstream[name]), name
    ds = datasets[0]
    picked = graph.select([f"align@{ds}"])
    assert {f"ingest@{ds}", f"align@{ds}"} <= set(picked.order) and f"shard@{ds}" not in picked.order
    assert not any(s.startswith("report") or s.startswith("train@") for s in picked.order)
