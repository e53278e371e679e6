"""Align reuses nothing it has not verified: a corrupt, truncated or unrecorded part is recomputed
(never merged), an output whose bytes differ from its record is rewritten, and a clean re-run
still does no work at all. Each case starts from a copy of one clean run and must end with that
run's bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from align_helpers import write_manifest
from pipeline.align.chunks import COUNTS, CROPS, OUTCOMES, PART, CorruptPart
from pipeline.align.settings import AlignSettings

OUTPUTS = ("crops.parquet", "outcomes.parquet", "summary.json", "contact_sheet.png")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings() -> AlignSettings:
    return AlignSettings.from_dict({"px": 48, "chunk_rows": 2, "detection": {"max_side": 256},
                                    "contact_sheet": {"n": 4, "tile": 24}})


def align(root: Path, monkeypatch=None, calls: list | None = None) -> dict:
    """align_dataset on ``root/m`` into ``root/aligned/jaffe``, chunks run in order in this process."""
    from pipeline.align.dataset import align_dataset
    from pipeline.runner import flows

    def sequential(name, fn, chunks, runner=None):
        if calls is not None:
            calls.append([c.key for c in chunks])
        return [fn(c) for c in chunks]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flows, "run_chunks", sequential)
        return align_dataset(root / "m", root / "aligned" / "jaffe", "jaffe", settings(), progress=False)


def read_bytes(out: Path) -> dict[str, bytes]:
    return {f: (out / f).read_bytes() for f in OUTPUTS}


def flip(path: Path, n: int = 16) -> None:
    """Invert ``n`` bytes in the middle of a file (bit rot, a bad copy)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + n] = bytes(b ^ 0xFF for b in data[mid:mid + n])
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """One clean run (6 rows in 3 chunks: faces, a blank and an unreadable image) and its bytes."""
    from skimage import data

    root = tmp_path_factory.mktemp("clean")
    face = data.astronaut()
    items = [(f"p{k}", np.roll(face, 9 * k, axis=1), ("happiness", "anger")[k % 2]) for k in range(4)]
    items += [("blank", np.zeros((60, 80, 3), np.uint8), "fear"), ("bad", b"not an image", "fear")]
    write_manifest(root / "m", items, dataset="jaffe")
    result = align(root)
    assert result["computed"] == result["chunks"] == 3
    return root, read_bytes(root / "aligned" / "jaffe")


@pytest.fixture
def run(clean, tmp_path) -> Path:
    """A copy of the clean run (manifest, outputs and parts) to damage."""
    root = tmp_path / "run"
    shutil.copytree(clean[0], root)
    return root


def parts_of(root: Path) -> list[Path]:
    return sorted(p for p in (root / "aligned" / ".jaffe.parts").iterdir() if p.is_dir())


def test_a_verified_output_is_up_to_date_without_work(run, clean):
    out = run / "aligned" / "jaffe"
    mtimes = {f: (out / f).stat().st_mtime_ns for f in OUTPUTS}
    calls: list = []
    result = align(run, calls=calls)
    assert calls == [] and result["computed"] == 0 and result["up_to_date"]
    assert {f: (out / f).stat().st_mtime_ns for f in OUTPUTS} == mtimes and read_bytes(out) == clean[1]


@pytest.mark.parametrize("name", OUTPUTS)
def test_a_corrupt_output_is_rebuilt_from_the_verified_parts(run, clean, name, capsys):
    out = run / "aligned" / "jaffe"
    flip(out / name)
    calls: list = []
    result = align(run, calls=calls)
    assert read_bytes(out) == clean[1]
    assert calls == [] and result["computed"] == 0  # the parts verified: merged again, not recomputed
    assert not result["up_to_date"]
    assert f"{out / name}: sha256 differs" in capsys.readouterr().err
    assert align(run)["up_to_date"]  # and the rebuilt output verifies


def test_an_edited_summary_that_still_parses_is_rebuilt(run, clean):
    summary = run / "aligned" / "jaffe" / "summary.json"
    data = json.loads(summary.read_text())
    data["images"] += 1  # valid JSON, same fingerprint: only its bytes tell
    summary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    result = align(run)
    assert read_bytes(run / "aligned" / "jaffe") == clean[1] and not result["up_to_date"]


def damage(part: Path, how: str) -> None:
    if how == "flipped crops":
        flip(part / CROPS)
    elif how == "truncated outcomes":
        truncate(part / OUTCOMES)
    elif how == "edited counts":
        counts = json.loads((part / COUNTS).read_text())
        first = next(iter(counts.values()))
        first[next(iter(first))] += 1
        (part / COUNTS).write_text(json.dumps(counts, sort_keys=True))
    elif how == "no record":  # as a killed run or an older version leaves a part
        (part / PART).unlink()
    elif how == "truncated record":
        truncate(part / PART)
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["flipped crops", "truncated outcomes", "edited counts", "no record",
                                 "truncated record"])
@pytest.mark.parametrize("output", ["removed", "kept"])
def test_a_damaged_part_is_recomputed_never_merged(run, clean, how, output, capsys):
    out = run / "aligned" / "jaffe"
    part = parts_of(run)[1]
    good = {f: (part / f).read_bytes() for f in (CROPS, OUTCOMES, COUNTS)}
    damage(part, how)
    if output == "removed":
        shutil.rmtree(out)
    else:
        flip(out / CROPS)
    calls: list = []
    result = align(run, calls=calls)
    assert calls == [[part.name]] and result["computed"] == 1
    assert read_bytes(out) == clean[1]
    assert {f: (part / f).read_bytes() for f in good} == good
    assert "recomputing 1 part(s) that fail verification" in capsys.readouterr().err


def test_merge_refuses_a_part_that_does_not_match_its_record(run):
    from pipeline.align.chunks import plan_chunks
    from pipeline.align.dataset import manifest_file
    from pipeline.align.outputs import merge, run_fingerprint

    parts = run / "aligned" / ".jaffe.parts"
    specs = list(plan_chunks(manifest_file(run / "m"), settings(), parts))
    flip(specs[2].part_dir / CROPS)
    with pytest.raises(CorruptPart, match=rf"^{specs[2].part_dir / CROPS}: sha256 differs from part.json"):
        merge(manifest_file(run / "m"), specs, run / "merged", "jaffe", settings(), run_fingerprint(specs, settings()))


def test_temporary_directories_of_killed_chunks_are_pruned(run):
    from pipeline.core import atomic

    parts = run / "aligned" / ".jaffe.parts"
    leftover = parts / f".{parts_of(run)[0].name}.{atomic._host()}-999999999.k3j9x0a_.tmp"  # a dead writer's
    leftover.mkdir()
    (leftover / CROPS).write_bytes(b"half")
    shutil.rmtree(run / "aligned" / "jaffe")
    align(run)
    assert not leftover.exists()
