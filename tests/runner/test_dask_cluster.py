"""The data stages on a real Dask cluster: `dask scheduler` and two `dask worker` processes on
127.0.0.1, reached through ``flow.runner.address`` as a user's cluster would be (no in-process
``LocalCluster``). Align and shard give the same bytes as the threads runner, and align finishes
when a worker is killed mid-run (Dask runs its chunks on the other one)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.align.chunks import COUNTS
from pipeline.align.dataset import align_dataset
from pipeline.align.settings import AlignSettings
from pipeline.core import params
from pipeline.ingest import ingest_dataset
from pipeline.runner.flows import window_runner
from pipeline.shard.build import Settings, build
from pipeline.stages.shard import SECTIONS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
THREADS = {"kind": "threads", "max_workers": 2}
OUTPUTS = ("crops.parquet", "outcomes.parquet", "summary.json", "contact_sheet.png")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workers_of(address: str) -> int:
    from distributed import Client

    with Client(address, timeout=10) as client:
        return len(client.scheduler_info()["workers"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers, each its own process group; yields
    ``(address, worker processes)``."""
    logs = tmp_path_factory.mktemp("dask-logs")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"

    def start(name: str, *args: str) -> subprocess.Popen:
        log = open(logs / f"{name}.log", "w")
        return subprocess.Popen([str(BIN / "dask"), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    procs = [start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")]
    workers = [start(f"worker{i}", "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                     "--host", "127.0.0.1", "--name", f"w{i}") for i in range(2)]
    procs += workers
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if workers_of(address) == 2:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("dask cluster did not start: " + " | ".join(
                    p.read_text()[-500:] for p in sorted(logs.iterdir())))
            time.sleep(1)
        yield address, workers
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def manifest(generated_raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("interim") / "jaffe"
    ingest_dataset("jaffe", generated_raw / "jaffe", out, params.section("ingest", "jaffe", path=ROOT / "params.yaml"),
                   progress=False)
    return out


def align_settings(**overrides) -> AlignSettings:
    s = params.section("align", "jaffe", path=ROOT / "params.yaml")
    return AlignSettings.from_dict({**s, **overrides}, "align.jaffe")


def read(out: Path, names) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in names}


@pytest.fixture(scope="module")
def threads_aligned(manifest, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("threads") / "jaffe"
    align_dataset(manifest, out, "jaffe", align_settings(chunk_rows=2), runner=THREADS, progress=False)
    return out


def test_align_and_shard_on_an_external_cluster_give_the_threads_runners_bytes(cluster, manifest, threads_aligned,
                                                                                tmp_path):
    address, _ = cluster
    dask = {"kind": "dask", "address": address}
    out = tmp_path / "aligned" / "jaffe"
    summary = align_dataset(manifest, out, "jaffe", align_settings(chunk_rows=2), runner=dask, progress=False)
    assert summary["computed"] == summary["chunks"] > 2
    assert read(out, OUTPUTS) == read(threads_aligned, OUTPUTS)

    loaded = params.load(ROOT / "params.yaml")
    settings = Settings(**{s: params.section(s, "jaffe", params=loaded) for s in SECTIONS})
    settings.shard.update(chunk_rows=16, window_chunks=2)
    shards = {}
    for name, runner in (("threads", THREADS), ("dask", dask)):
        shards[name] = tmp_path / name / "jaffe"
        build("jaffe", out, shards[name], settings, run_window=window_runner(f"shard-jaffe-{name}", runner=runner))
    files = sorted(p.name for p in shards["threads"].iterdir())
    assert any(f.endswith(".parquet") for f in files)
    assert read(shards["dask"], files) == read(shards["threads"], files)


def test_align_finishes_when_a_worker_dies_mid_run(cluster, manifest, threads_aligned, tmp_path):
    address, workers = cluster
    out = tmp_path / "aligned" / "jaffe"
    parts = out.parent / f".{out.name}.parts"
    result: dict = {}

    def run():
        try:
            result["summary"] = align_dataset(manifest, out, "jaffe", align_settings(chunk_rows=2),
                                              runner={"kind": "dask", "address": address}, progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 300
    def done_parts() -> int:
        return sum((d / COUNTS).is_file() for d in parts.iterdir()) if parts.is_dir() else 0

    while not done_parts() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # the first chunk is done: the others are queued or running
    done_at_kill = done_parts()
    os.killpg(workers[0].pid, signal.SIGKILL)
    thread.join(timeout=600)
    assert not thread.is_alive(), "align did not finish after a worker died"
    assert "error" not in result, result.get("error")
    assert read(out, OUTPUTS) == read(threads_aligned, OUTPUTS)
    assert 0 < done_at_kill < result["summary"]["chunks"] == result["summary"]["computed"]  # killed mid-run
    assert workers_of(address) == 1
