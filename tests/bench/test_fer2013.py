"""FER2013's protocol and its bench (issue 26), on generated faces in the image-folder edition.

The bench runs the real stages (ingest -> align -> shard -> train -> distill -> ten-crop scoring) under
the ``fer2013`` profile. Two runs whose folders differ only in their PrivateTest files must make the same
choices -- the same epochs, learning rates, kept weights and distillation rounds -- and differ only in
the PrivateTest column: no PrivateTest row reaches a choice.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from bench_modules import load_bench

from pipeline.shards.dataset import ShardDataset
from pipeline.synthetic import write_dataset

pytestmark = pytest.mark.usefixtures("prefect_harness")





def _other_private_test(raw: Path) -> None:
    """Every PrivateTest face of ``raw`` replaced by another face (mirrored, inverted) in another class
    folder: the same file count, different labels and pixels."""
    import cv2

    files = sorted(raw.glob("test/*/PrivateTest_*.jpg"))
    classes = sorted(p.name for p in (raw / "test").iterdir())
    for path in files:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        other = classes[(classes.index(path.parent.name) + 1) % len(classes)]
        path.unlink()
        cv2.imwrite(str(raw / "test" / other / path.name), 255 - img[:, ::-1])
    assert files


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, prefect_harness):
    """The bench (2 epochs, 2 rounds) on a generated folder and on its copy with other PrivateTest faces."""
    import os

    os.environ["PREFECT_API_URL"] = prefect_harness  # the stages' child processes report to the test server
    bench = load_bench("fer2013")
    top = tmp_path_factory.mktemp("fer2013")
    raw = top / "raw"
    write_dataset("fer2013", raw, per_class=10, seed=4, files=["folders"])
    shutil.copytree(raw, top / "raw2")
    _other_private_test(top / "raw2")
    for name in ("raw", "raw2"):
        assert bench.main(["--raw", str(top / name), "--work", str(top / f"work-{name}"), "--epochs", "3",
                           "--rounds", "2", "--threads", "1"]) == 0
    return top / "work-raw", top / "work-raw2"


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_private_test_reaches_no_choice(two_runs):
    a, b = two_runs
    for run in ("ean-fer2013", "ean_distilled-fer2013"):
        wa, wb = _weights(a / "models" / run / "checkpoint.pt"), _weights(b / "models" / run / "checkpoint.pt")
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    for metric in ("val/acc.tsv", "val/loss.tsv", "lr.tsv"):  # the epochs' validation and learning rates
        rows = [(w / "models" / "ean-fer2013" / "dvclive" / "plots" / "metrics" / metric).read_text().splitlines()
                for w in (a, b)]
        assert [r.split("\t")[-1] for r in rows[0]] == [r.split("\t")[-1] for r in rows[1]]
    ra, rb = (json.loads((w / "models" / "ean_distilled-fer2013" / "rounds.json").read_text()) for w in (a, b))
    for r in ra["rounds"] + rb["rounds"]:
        r.pop("source", None)  # the teacher's path: each run's own work directory
    assert ra == rb and len(ra["rounds"]) >= 2
    res_a, res_b = (json.loads((w / "results.json").read_text()) for w in (a, b))
    for name in ("ean", "ean_distilled"):
        assert res_a[name]["PublicTest"] == res_b[name]["PublicTest"]
    # ... while the PrivateTest rows did differ: the same count, every one relabelled
    labels = []
    for w in (a, b):
        test = ShardDataset(w / "processed" / "fer2013", split="test")
        labels.append({i.rsplit("/", 1)[1]: t for i, t in zip(test.image_ids, test.targets)})
    assert labels[0].keys() == labels[1].keys() and len(labels[0]) == 7
    assert all(labels[0][n] != labels[1][n] for n in labels[0])


def test_bench_reports_each_stage_and_both_test_parts(two_runs, capsys):
    work, _ = two_runs
    stages = json.loads((work / "data_stages.json").read_text())
    assert set(stages) == {"ingest", "align", "shard"}
    assert all(s["seconds"] > 0 and s["peak_rss_mb"] > 50 for s in stages.values())
    results = json.loads((work / "results.json").read_text())
    assert list(results) == ["ean", "ean_distilled"]
    assert results["ean"]["params"] == 43_840  # 3 input channels: Table 6's count
    assert results["ean_distilled"]["rounds"] >= 1
    for row in results.values():
        for part in ("PublicTest", "PrivateTest"):
            assert 0 <= row[part]["accuracy"] <= 1 and len(row[part]["recall"]) == 7


def test_a_rerun_reuses_everything_and_a_folder_without_private_test_gets_a_dash(two_runs, tmp_path, capsys,
                                                                                 monkeypatch):
    from fer_models import pretrained as shipped
    from pipeline.core.digest import dvc_md5

    bench = load_bench("fer2013")
    work, _ = two_runs
    before = {p: p.stat().st_mtime_ns for p in (work / "models").rglob("checkpoint.pt")}
    argv = ["--raw", str(work.parent / "raw"), "--epochs", "3", "--rounds", "2", "--threads", "1"]
    monkeypatch.setattr(shipped, "PACKAGE_WEIGHTS", tmp_path / "weights")  # not the package's own
    assert bench.main(argv + ["--work", str(work), "--publish"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (work / "models").rglob("checkpoint.pt")} == before
    # --publish ships the distilled EAN with the shards' DVC hash and the command that remakes it
    card = json.loads((tmp_path / "weights" / "ean.json").read_text())
    assert card["provenance"]["dvc"]["shards"]["md5"] == dvc_md5(work / "processed" / "fer2013")["md5"]
    assert card["provenance"]["command"].startswith("python bench/fer2013.py --raw ")
    assert card["provenance"]["profile"] == "fer2013" and card["input_size"] == [3, 44, 44]  # the run's params
    assert card["provenance"]["best_round"] in (0, 1, 2)
    published = torch.load(tmp_path / "weights" / "ean.pt", map_location="cpu", weights_only=True)
    distilled = _weights(work / "models" / "ean_distilled-fer2013" / "checkpoint.pt")
    assert published.keys() == distilled.keys() and all(torch.equal(published[k], distilled[k]) for k in distilled)
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| ean |"))
    assert row.split(" | ")[1] == "43,840" and row.split(" | ")[3] != "-"
    # the copy most users have: no PrivateTest files, so no test shards (the finished runs are reused)
    public = tmp_path / "work"
    shutil.copytree(work, public)
    for path in (public / "processed" / "fer2013").glob("test-*.parquet"):
        path.unlink()
    assert bench.main(argv + ["--work", str(public)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| ean |"))
    assert row.split(" | ")[3] == "-" and row.split(" | ")[2] != "-"
    assert json.loads((public / "results.json").read_text())["ean"]["PrivateTest"] is None
