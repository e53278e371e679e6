"""The project's hashes: a file's sha256, and the md5 DVC records in dvc.lock for an output."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.core.digest import dvc_md5, file_sha256


def test_file_sha256_is_the_sha256_of_the_bytes(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(bytes(range(256)) * 5000)  # over one 1 MiB block
    assert file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_dvc_md5_is_what_dvc_itself_records(tmp_path):
    """The same md5 (folder: ``.dir``), size and file count as ``dvc add`` writes, for a folder and a file."""
    dvc = Path(sys.executable).with_name("dvc")
    if not dvc.exists() or shutil.which("git") is None:
        pytest.skip("needs dvc and git")
    shards = tmp_path / "data" / "shards"
    (shards / "sub").mkdir(parents=True)
    (shards / "a.parquet").write_bytes(b"\x00" * 1000)
    (shards / "sub" / "stats.json").write_text('{"rows": 3}\n')
    single = tmp_path / "data" / "checkpoint.pt"
    single.write_bytes(b"weights" * 100)
    mine = {"shards": dvc_md5(shards), "checkpoint.pt": dvc_md5(single)}
    for argv in (["git", "init", "-q"], [str(dvc), "init", "-q"], [str(dvc), "add", "-q", "data/shards", "data/checkpoint.pt"]):
        subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True)
    for name, info in mine.items():
        out = yaml.safe_load((tmp_path / "data" / f"{name}.dvc").read_text())["outs"][0]
        assert {k: out[k] for k in info} == info
    assert mine["shards"]["md5"].endswith(".dir") and mine["shards"]["nfiles"] == 2
    assert mine["checkpoint.pt"]["md5"] == hashlib.md5(single.read_bytes()).hexdigest()
