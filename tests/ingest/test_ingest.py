"""The ingest stage and its one writer: contract schema, determinism, bounded row groups, atomicity, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest_helpers import PARAMS, check_accounting, decoded, ingest, write_image
from pipeline import cli
from pipeline.ingest import ingest_dataset
from pipeline.ingest.readers import LayoutError, get_reader

FILES = ("manifest.parquet", "quarantine.parquet", "summary.json")


@pytest.fixture
def ck48(tmp_path) -> Path:
    """A small CK+48 tree: 9 kept images over 3 classes and 3 subjects, one duplicate, one bad name."""
    root = tmp_path / "raw"
    seed = 0
    for cls in ("anger", "happy", "surprise"):
        for subject in ("S010", "S011", "S012"):
            seed += 1
            write_image(root / cls / f"{subject}_00{seed % 3 + 1}_{seed:08d}.png", seed)
    write_image(root / "fear" / "S013_001_00000001.png", seed=1)  # duplicate pixels
    write_image(root / "fear" / "nope.png", seed=50)
    return root


def test_manifest_follows_the_contract(ck48, tmp_path):
    summary, manifest, quarantine = ingest("ckplus", ck48, tmp_path / "out")
    check_accounting(summary, manifest, quarantine, 11)
    assert manifest.schema.names == ["image_id", "dataset", "label", "label_name", "native_label", "subject",
                                     "source_split", "source", "width", "height", "channels", "sha256",
                                     "image", "extra"]
    types = {f.name: f.type for f in manifest.schema}
    assert types["label"] == pa.int64() and types["image"] == pa.binary()
    assert types["width"] == types["height"] == types["channels"] == pa.int32()
    assert quarantine.schema.names == ["source", "dataset", "reason", "detail"]
    for row in manifest.to_pylist():
        pixels = decoded(row["image"])
        assert row["image"][:8] == b"\x89PNG\r\n\x1a\n"
        assert hashlib.sha256(pixels.tobytes()).hexdigest() == row["sha256"]
        assert pixels.shape == (row["height"], row["width"])
        assert row["dataset"] == "ckplus" and isinstance(json.loads(row["extra"]), dict)
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk == summary
    assert set(on_disk) >= {"read", "kept", "quarantined", "per_class", "per_reason"}
    assert on_disk["per_reason"] == {"bad_name": 1, "duplicate": 1}
    assert quarantine.column("dataset").to_pylist() == ["ckplus", "ckplus"]


def test_same_input_gives_byte_identical_outputs(ck48, tmp_path):
    ingest("ckplus", ck48, tmp_path / "a")
    ingest("ckplus", ck48, tmp_path / "b")
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_chunking_changes_row_groups_not_rows(ck48, tmp_path):
    ingest("ckplus", ck48, tmp_path / "big")
    ingest("ckplus", ck48, tmp_path / "small", chunk_size=2, window_chunks=1)
    ingest("ckplus", ck48, tmp_path / "bytes", chunk_bytes=1)
    big = pq.read_table(tmp_path / "big" / "manifest.parquet")
    for name, groups in (("small", 5), ("bytes", 9)):
        other = pq.ParquetFile(tmp_path / name / "manifest.parquet")
        assert other.num_row_groups == groups  # bounded memory: a row group is flushed every chunk
        assert other.read().equals(big)
    assert pq.ParquetFile(tmp_path / "big" / "manifest.parquet").num_row_groups == 1


def test_output_replaced_atomically(ck48, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("from an older run")
    ingest("ckplus", ck48, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    before = {n: (out / n).read_bytes() for n in FILES}

    def broken(fn, chunks):
        raise RuntimeError("killed mid-run")

    cfg = {"chunk_size": 4}
    with pytest.raises(RuntimeError, match="killed mid-run"):
        ingest_dataset("ckplus", ck48, out, cfg, run_window=broken, progress=False)
    assert {n: (out / n).read_bytes() for n in FILES} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]  # no temporary left behind


def test_cli_prints_summary(ck48, tmp_path, capsys):
    code = cli.main(["ingest", "ckplus", "--raw", str(ck48), "--out", str(tmp_path / "out"),
                     "--params", str(PARAMS), "--no-prefect"])
    assert code == 0
    out = capsys.readouterr().out
    assert "ckplus: read 11 = kept 9 + quarantined 2  (layout ck+48)" in out
    assert "per class: anger 3, happiness 3, surprise 3" in out
    assert "quarantined: bad_name 1, duplicate 1" in out


def test_cli_bad_root_fails_at_once_naming_path_and_layout(tmp_path, capsys):
    code = cli.main(["ingest", "kdef", "--raw", str(tmp_path / "absent"), "--out", str(tmp_path / "out"),
                     "--params", str(PARAMS), "--no-prefect"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'absent'}: raw root does not exist" in err and "AF01AFS.JPG" in err
    assert not (tmp_path / "out").exists()


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'affectnet'; known: fer2013, ckplus, jaffe, rafdb, kdef"):
        get_reader("affectnet")


@pytest.mark.slow
def test_prefect_run_gives_the_same_bytes(ck48, tmp_path, monkeypatch, prefect_harness):
    """The stage's default path decodes chunks as Prefect tasks; the output equals the in-process one."""
    import yaml

    params = yaml.safe_load(PARAMS.read_text())
    params["ingest"]["defaults"].update(chunk_size=3, window_chunks=2)  # 4 chunks in 3 flow runs (1, 2, 1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("FER_PARAMS", str(tmp_path / "params.yaml"))
    base = ["ingest", "ckplus", "--raw", str(ck48)]
    assert cli.main(base + ["--out", str(tmp_path / "plain"), "--no-prefect"]) == 0
    assert cli.main(base + ["--out", str(tmp_path / "prefect")]) == 0
    for name in FILES:
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "prefect" / name).read_bytes()
    assert pq.ParquetFile(tmp_path / "prefect" / "manifest.parquet").num_row_groups == 3


def test_root_without_images_is_an_error(tmp_path):
    (tmp_path / "raw" / "anger").mkdir(parents=True)
    with pytest.raises(LayoutError, match="no input images found"):
        ingest("ckplus", tmp_path / "raw", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_windows_follow_the_byte_budget(ck48, tmp_path):
    """The first window is one chunk; later ones hold as many chunks as fit the PNG byte budget."""
    from pipeline.runner.flows import in_process

    def sizes_with(budget: int) -> list[int]:
        seen: list[int] = []

        def spy(fn, chunks):
            seen.append(len(chunks))
            return in_process(fn, chunks)

        cfg = {"chunk_size": 2, "window_chunks": 3, "window_bytes": budget}
        ingest_dataset("ckplus", ck48, tmp_path / f"out{budget}", cfg, run_window=spy, progress=False)
        return seen

    assert sizes_with(1) == [1, 1, 1, 1, 1, 1]          # 11 items in chunks of 2, never more than a chunk
    assert sizes_with(1 << 30) == [1, 3, 2]             # then the cap of 3 chunks
    png = sum(len(b) for b in pq.read_table(tmp_path / "out1" / "manifest.parquet")["image"].to_pylist())
    assert sizes_with(int(png / 9 * 2 * 2.5)) == [1, 2, 2, 1]  # ~2.5 chunks of PNG bytes fit: windows of 2
    for name in FILES:
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / f"out{1 << 30}" / name).read_bytes()


def test_writer_never_publishes_without_finish(tmp_path):
    from pipeline.ingest.manifest import ManifestWriter

    with pytest.raises(RuntimeError, match="closed without finish"):
        with ManifestWriter(tmp_path / "out", "jaffe"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_exif_orientation_applied_and_grey_stays_one_channel(tmp_path):
    import numpy as np
    from PIL import Image

    from pipeline.ingest.readers.decode import decode_file

    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(arr).save(tmp_path / "o.jpg", exif=exif, quality=95)
    upright = decode_file(tmp_path / "o.jpg")
    assert upright.shape == (40, 20, 3) and upright[:20].mean() > 200 and upright[20:].mean() < 50
    Image.fromarray(arr[..., 0]).save(tmp_path / "g.png")
    assert decode_file(tmp_path / "g.png").shape == (20, 40)
    Image.fromarray((arr[..., 0].astype(np.uint16) * 257)).save(tmp_path / "g16.png")  # 16-bit grey
    grey16 = decode_file(tmp_path / "g16.png")
    assert grey16.shape == (20, 40) and grey16.dtype == np.uint8 and grey16.max() == 255
