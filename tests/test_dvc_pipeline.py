"""`dvc repro` end to end on a tiny variant of the demo profile, in a temporary git repository.

The repository gets the project's real dvc.yaml, Makefile, code (pipeline/, fer_models/, run from
there via PYTHONPATH so that the code DVC hashes is the code that runs) and params.yaml cut down
to two datasets (fer2013: pre-cropped, no MTCNN; jaffe: MTCNN) with few images, and the model
stages to the cheapest chain (EAN on fer2013 for 1 epoch, one distillation round, both evaluated,
the report). One module-scoped `make raw` + `dvc repro` is shared by the assertions; tests that
change things work on copies.
Stage subprocesses report to the session's test Prefect server (fast: no server start per stage).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATASETS = ["fer2013", "jaffe"]
DATA_STAGES = ("ingest", "align", "shard")
COPIED = ["dvc.yaml", "Makefile", ".gitignore", ".dvcignore", "data/.gitignore", "pipeline", "fer_models", "profiles"]


@dataclass
class Repo:
    path: Path
    env: dict[str, str]
    first_repro: str

    def run(self, *cmd: str, check: bool = True, cwd: Path | None = None) -> str:
        proc = subprocess.run(cmd, cwd=cwd or self.path, env=self.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-4000:]}")
        return proc.stdout

    def copy(self, dest: Path) -> "Repo":
        """An independent copy (work tree, git, DVC cache) whose code path is the copy's own."""
        shutil.copytree(self.path, dest, symlinks=True)
        return Repo(dest, {**self.env, "PYTHONPATH": str(dest)}, self.first_repro)


# the model stages, cut to the cheapest chain: EAN (44k parameters) on fer2013, distilled once
TINY_RUNS = {"ean-fer2013": {"model": "ean", "dataset": "fer2013"}}
TINY_EVALS = {**TINY_RUNS, "ean_distilled-fer2013": {"model": "ean_distilled", "dataset": "fer2013"}}


def tiny_params(base: dict) -> dict:
    """The demo params cut to two small datasets and, where dvc.yaml has them, one quick model chain."""
    p = yaml.safe_load(yaml.safe_dump(base))
    p["datasets"] = list(DATASETS)
    p["sample"]["fer2013"] = {"per_class": 8}
    p["sample"]["jaffe"] = {"per_class": 2}
    if "matrix" in p.get("train", {}):
        p["train"]["matrix"] = dict(TINY_RUNS)
        for recipe in ("defaults", "ean"):
            p["train"].setdefault(recipe, {})["epochs"] = 1
    if "datasets" in p.get("distill", {}):
        p["distill"]["datasets"] = ["fer2013"]
        p["distill"]["defaults"].update(max_rounds=1, epochs=1)
    if "matrix" in p.get("evaluate", {}):
        p["evaluate"]["matrix"] = dict(TINY_EVALS)
        p["evaluate"]["latency"] = {**p["evaluate"].get("latency", {}), "runs": 3}
    if "datasets" in p.get("cv", {}):
        p["cv"]["datasets"] = []
    return p


def model_stages() -> list[str]:
    """The model stage names this tiny build runs, if dvc.yaml has the model stages."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    names = [f"train@{k}" for k in TINY_RUNS if "train" in stages]
    names += ["distill@fer2013"] if "distill" in stages else []
    names += [f"evaluate@{k}" for k in TINY_EVALS if "evaluate" in stages]
    return names + (["report"] if "report" in stages else [])


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def tree_hashes(root: Path, under: str = "data") -> dict[str, str]:
    """sha256 of every file below ``root/under`` (align's resumable parts excepted)."""
    out = {}
    for p in sorted((root / under).rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and ".parts/" not in rel:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness) -> Repo:
    root = tmp_path_factory.mktemp("e2e")
    repo = root / "repo"
    repo.mkdir()
    for name in COPIED:
        src, dst = ROOT / name, repo / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "demo.yaml"))
        elif src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    params = tiny_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ,
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo),
           "PREFECT_API_URL": prefect_harness,
           "PREFECT_HOME": str(root / "prefect-home"),
           "OMP_NUM_THREADS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    r = Repo(repo, env, "")
    r.run("git", "init", "-q")
    r.run("dvc", "init", "-q")
    r.run("dvc", "config", "core.analytics", "false")
    # the Makefile's own raw-data step (sample + dvc add), with this venv and no install step
    r.run("make", "raw", f"VENV={BIN.parent}", "-o", str(BIN.parent / ".installed"))
    r.run("git", "add", "-A")
    r.run("git", "commit", "-qm", "tiny demo")
    r.first_repro = r.run("dvc", "repro")
    r.run("git", "add", "-A")
    r.run("git", "commit", "-qm", "repro")
    return r


def test_repro_runs_every_stage_and_writes_the_contracted_outputs(built):
    ran = ran_stages(built.first_repro)
    for stage in DATA_STAGES:
        for ds in DATASETS:
            assert f"{stage}@{ds}" in ran
    assert set(model_stages()) <= set(ran), ran
    for ds in DATASETS:
        d = built.path / "data"
        assert {"manifest.parquet", "quarantine.parquet", "summary.json"} <= {p.name for p in (d / "interim" / ds).iterdir()}
        assert {"crops.parquet", "outcomes.parquet", "summary.json", "contact_sheet.png"} <= {
            p.name for p in (d / "aligned" / ds).iterdir()}
        assert list((d / "processed" / ds).glob("train-*-of-*.parquet"))
    # stage logs (Prefect flows of the chunk tasks) reached dvc's output
    assert "Flow run" in built.first_repro and "ingest-jaffe" in built.first_repro


def test_second_repro_runs_nothing_and_status_is_clean(built):
    assert ran_stages(built.run("dvc", "repro")) == []
    assert "Data and pipelines are up to date" in built.run("dvc", "status")
    assert built.run("git", "status", "--porcelain") == ""  # outputs are ignored by git, lock committed


def test_changing_the_runner_changes_no_stage(built, tmp_path):
    r = built.copy(tmp_path / "runner")
    p = yaml.safe_load((r.path / "params.yaml").read_text())
    p["flow"]["runner"] = {"kind": "dask", "n_workers": 2}
    (r.path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    assert "Data and pipelines are up to date" in r.run("dvc", "status")


def test_align_on_a_dask_local_cluster_equals_the_default_runner(built, tmp_path):
    r = built.copy(tmp_path / "dask")
    p = yaml.safe_load((r.path / "params.yaml").read_text())
    p["flow"]["runner"] = {"kind": "dask", "n_workers": 2}
    (r.path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    out = r.run("fer-pipeline", "align", "jaffe", "--manifest", "data/interim/jaffe",
                "--out", "data/dask-aligned/jaffe", "--no-progress")
    assert "runner dask" in out
    for name in ("crops.parquet", "outcomes.parquet", "summary.json", "contact_sheet.png"):
        assert ((r.path / "data/dask-aligned/jaffe" / name).read_bytes()
                == (built.path / "data/aligned/jaffe" / name).read_bytes()), name


def test_changing_one_datasets_align_param_reruns_only_its_downstream(built, tmp_path):
    import pyarrow.parquet as pq

    r = built.copy(tmp_path / "param")
    # the crop side: `px`, not `size`, which DVC's run-cache ignores (treeverse/dvc#10296): a new value
    # really re-runs instead of checking out old crops from the run-cache
    set_align_jaffe(r, px=64)
    ran = ran_stages(r.run("dvc", "repro"))
    assert "align@jaffe" in ran and "shard@jaffe" in ran
    assert not [s for s in ran if s.endswith("@fer2013") or s.startswith("ingest@")], ran
    crops = pq.read_table(r.path / "data/aligned/jaffe/crops.parquet", columns=["width", "height"])
    assert set(crops.column("width").to_pylist()) == {64} == set(crops.column("height").to_pylist())


def test_push_clone_pull_gives_identical_files_and_nothing_to_rebuild(built, tmp_path):
    r = built.copy(tmp_path / "origin")
    remote = tmp_path / "remote"
    r.run("dvc", "remote", "add", "-d", "team", str(remote))
    r.run("git", "commit", "-qam", "remote")
    r.run("dvc", "push")
    clone_path = tmp_path / "clone"
    r.run("git", "clone", "-q", str(r.path), str(clone_path))
    clone = Repo(clone_path, {**r.env, "PYTHONPATH": str(clone_path)}, "")
    clone.run("dvc", "pull")
    for under in ("data", "models", "eval", "reports"):
        if (r.path / under).exists():
            assert tree_hashes(clone.path, under) == tree_hashes(r.path, under), under
    assert "Data and pipelines are up to date" in clone.run("dvc", "status")
    assert ran_stages(clone.run("dvc", "repro")) == []


def test_a_teammate_gets_a_run_from_the_shared_run_cache_instead_of_recomputing(built, tmp_path):
    """A runs a new align.jaffe setting and pushes the run-cache; B, on the old commit, asks for the
    same setting and gets A's outputs checked out from the pulled run-cache: nothing recomputed."""
    a = built.copy(tmp_path / "a")
    remote = tmp_path / "remote"
    a.run("dvc", "remote", "add", "-d", "team", str(remote))
    a.run("git", "commit", "-qam", "remote")
    a.run("dvc", "push")  # the committed state, as the team shares it
    b = Repo(tmp_path / "b", {**a.env, "PYTHONPATH": str(tmp_path / "b")}, "")
    a.run("git", "clone", "-q", str(a.path), str(b.path))
    set_align_jaffe(a, px=56)
    assert {"align@jaffe", "shard@jaffe"} <= set(ran_stages(a.run("dvc", "repro", "shard@jaffe")))
    a.run("dvc", "push", "--run-cache")

    b.run("dvc", "pull", "--run-cache")  # the committed data and the team's runs
    set_align_jaffe(b, px=56)
    out = b.run("dvc", "repro", "--pull", "shard@jaffe")  # --pull: a cached run's outputs from the remote
    assert ran_stages(out) == [], out  # restored, not run
    assert "align@jaffe' is cached - skipping run" in out and "shard@jaffe' is cached - skipping run" in out
    for under in ("data/aligned/jaffe", "data/processed/jaffe"):
        assert tree_hashes(b.path, under) == tree_hashes(a.path, under), under


def set_align_jaffe(repo: Repo, **values) -> None:
    p = yaml.safe_load((repo.path / "params.yaml").read_text())
    p["align"]["jaffe"].update(values)
    (repo.path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def aligned_content(out_dir: Path) -> dict[str, object]:
    """What align computed, whatever its chunking (row groups, fingerprint, chunk_rows aside)."""
    import pyarrow.parquet as pq

    summary = json.loads((out_dir / "summary.json").read_text())
    summary.pop("fingerprint")
    summary["settings"].pop("chunk_rows")
    return {"crops": pq.read_table(out_dir / "crops.parquet").to_pylist(),
            "outcomes": pq.read_table(out_dir / "outcomes.parquet").to_pylist(),
            "sheet": (out_dir / "contact_sheet.png").read_bytes(), "summary": summary}


def test_a_killed_stage_leaves_no_output_a_rerun_trusts(built, tmp_path):
    r = built.copy(tmp_path / "kill")
    out_dir, parts = r.path / "data/aligned/jaffe", r.path / "data/aligned/.jaffe.parts"
    expected = aligned_content(out_dir)
    # smaller chunks: a params change DVC re-runs for, several chunk tasks so the kill lands
    # between them, and parts that differ from the build's (computed, not reused)
    set_align_jaffe(r, chunk_rows=8)
    proc = subprocess.Popen(["dvc", "repro", "align@jaffe"], cwd=r.path, env=r.env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    known = set(parts.rglob("counts.json"))  # parts of the original build
    while time.monotonic() < deadline and proc.poll() is None:
        if set(parts.rglob("counts.json")) - known:  # a first new chunk is complete
            break
        time.sleep(0.1)
    assert proc.poll() is None, "align finished (or failed) before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    assert "align@jaffe" in r.run("dvc", "status")  # DVC does not take what is there as done
    out = r.run("dvc", "repro")
    assert "align@jaffe" in ran_stages(out)
    computed, chunks = map(int, re.search(r"(\d+)/(\d+) chunk\(s\) computed", out).groups())
    assert 0 < computed < chunks, out  # the killed run's complete chunks were reused, the rest computed
    assert "Data and pipelines are up to date" in r.run("dvc", "status")
    assert aligned_content(out_dir) == expected  # same crops as the uninterrupted build
    leftovers = [p.name for p in (r.path / "data/aligned").rglob("*.tmp")]
    assert leftovers == [], leftovers  # the killed run's temporary folders are gone


def lock_hash(repo: Repo, stage: str) -> str:
    return yaml.safe_load((repo.path / "dvc.lock").read_text())["stages"][stage]["outs"][0]["md5"]


def flip_bytes(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at:at + 16] = bytes(b ^ 0xFF for b in data[at:at + 16])
    path.write_bytes(bytes(data))


def test_a_corrupted_aligned_output_or_part_is_repaired_never_locked_in(built, tmp_path):
    r = built.copy(tmp_path / "corrupt")
    out_dir, parts = r.path / "data/aligned/jaffe", r.path / "data/aligned/.jaffe.parts"
    good, good_hash = tree_hashes(r.path, "data/aligned/jaffe"), lock_hash(r, "align@jaffe")
    flip_bytes(out_dir / "crops.parquet")
    assert "align@jaffe" in r.run("dvc", "status")
    r.run("dvc", "repro", "-f", "-s", "align@jaffe")
    assert tree_hashes(r.path, "data/aligned/jaffe") == good and lock_hash(r, "align@jaffe") == good_hash
    assert "Data and pipelines are up to date" in r.run("dvc", "status")

    flip_bytes(next(parts.rglob("crops.parquet")))  # a chunk part, and the output gone
    shutil.rmtree(out_dir)
    out = r.run("dvc", "repro", "-f", "-s", "align@jaffe")  # run it (DVC would check the output out of its cache)
    computed, chunks = map(int, re.search(r"(\d+)/(\d+) chunk\(s\) computed", out).groups())
    assert "fail verification" in out and computed == 1 <= chunks, out  # the corrupt part recomputed
    assert tree_hashes(r.path, "data/aligned/jaffe") == good and lock_hash(r, "align@jaffe") == good_hash


# --- dvc.yaml declares the code each stage runs -------------------------------------------------

# decides where work runs, never what it computes (see dvc.yaml's header): in no stage's deps
RUNNER = "pipeline/runner/"


def local_imports(module_file: Path) -> set[Path]:
    """Files of this project imported anywhere in ``module_file`` (module level or in functions)."""
    found = set()
    for node in ast.walk(ast.parse(module_file.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if not name.split(".")[0] in ("pipeline", "fer_models"):
                continue
            path = ROOT / Path(*name.split("."))
            if path.with_suffix(".py").is_file():
                found.add(path.with_suffix(".py"))
            elif (path / "__init__.py").is_file():
                found.add(path / "__init__.py")
    return found


def closure(start: Path) -> set[Path]:
    seen, todo = set(), [start]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo += list(local_imports(f))
        if f.name == "__init__.py":
            continue
        pkg_init = f.parent / "__init__.py"  # importing a.b.c runs a/__init__ and a/b/__init__
        if pkg_init.is_file() and pkg_init != f:
            todo.append(pkg_init)
    return seen


def package_of(path: str) -> str:
    """``pipeline/<package>`` (or ``fer_models``) of a code file."""
    parts = path.split("/")
    return "fer_models" if parts[0] == "fer_models" else "/".join(parts[:2])


@pytest.mark.parametrize("stage", [s for s in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]])
def test_stage_deps_are_its_entry_and_exactly_the_packages_it_runs(stage):
    """deps by package: the entry ``pipeline/stages/<stage>.py`` and every package its imports reach
    (the core included, the runner never); a missing one would let stale outputs pass as up to date,
    an extra one re-runs the stage for code it does not run."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    spec = spec.get("do", spec)
    deps = [d for d in spec.get("deps", []) if d.startswith(("pipeline", "fer_models"))]
    entry = f"pipeline/stages/{stage}.py"
    code = {p.relative_to(ROOT).as_posix() for p in closure(ROOT / entry)}
    code = {c for c in code if not c.startswith(RUNNER)} - {"pipeline/__init__.py", "pipeline/stages/__init__.py"}
    expected = {entry} | {package_of(c) for c in code if c != entry}
    assert len(deps) == len(set(deps)), f"{stage}: a dep listed twice"
    assert set(deps) - expected == set(), f"{stage}: deps it does not run"
    assert expected - set(deps) == set(), f"{stage}: code it runs that is not in deps"
