"""Shipping a trained network inside fer_models (``fer-pipeline publish``), timm-style: the weights,
their sha256 and what a user needs (classes, mean/std, input size, provenance), loaded by
``create_model(name, pretrained=True)`` only when the hash matches."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from inference_helpers import cli, make_checkpoint

import fer_models
import fer_models.ean
from fer_models import pretrained as shipped


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A checkpoint published into a temporary fer_models/weights/ (the package's own is not touched)."""
    weights = tmp_path / "weights"
    monkeypatch.setattr(shipped, "PACKAGE_WEIGHTS", weights)
    ckpt = make_checkpoint(tmp_path / "models" / "ean-ckplus" / "checkpoint.pt")
    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  shard@ckplus:\n    outs:\n    - path: data/processed/ckplus\n"
                    "      md5: abc.dir\n")
    (tmp_path / "data" / "processed" / "ckplus").mkdir(parents=True)
    (tmp_path / "data" / "processed" / "ckplus" / "stats.json").write_text("{}\n")
    rc, out, err = cli("publish", "--checkpoint", ckpt, "--name", "ean", "--lock", lock, cwd=tmp_path)
    assert rc == 0, err
    monkeypatch.setitem(fer_models.ean.default_cfgs["ean"], "pretrained", shipped.shipped_cfg("ean"))
    return ckpt, weights


def test_published_weights_load_exactly_with_their_card(published):
    ckpt, weights = published
    card = json.loads((weights / "ean.json").read_text())
    assert card["classes"] == ["anger", "happiness", "surprise"] and card["input_size"][0] == 1
    assert card["mean"] == [0.5] and card["provenance"]["dvc_lock"] == {"data/processed/ckplus": "abc.dir"}
    assert card["provenance"]["dataset"] == "ckplus" and len(card["sha256"]) == 64
    dvc = card["provenance"]["dvc"]  # computed the way DVC does (tests/core/test_digest.py)
    assert dvc["shards"]["path"] == "data/processed/ckplus" and dvc["shards"]["md5"].endswith(".dir")
    assert dvc["checkpoint"]["md5"] == hashlib.md5(ckpt.read_bytes()).hexdigest()
    model = fer_models.create_model("ean", num_classes=3, in_chans=1, pretrained=True)
    want = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(model.state_dict()[k], want[k]) for k in want)
    assert "ean" in fer_models.list_models(pretrained=True)


def test_a_damaged_shipped_file_is_refused_in_one_line(published):
    _, weights = published
    data = bytearray((weights / "ean.pt").read_bytes())
    data[-100] ^= 0xFF
    (weights / "ean.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"ean\.pt: sha256 [0-9a-f]{16}\.\.\. is not the published"):
        fer_models.create_model("ean", num_classes=3, in_chans=1, pretrained=True)
    (weights / "ean.pt").unlink()
    with pytest.raises(FileNotFoundError, match="the shipped weights are missing"):
        fer_models.create_model("ean", num_classes=3, in_chans=1, pretrained=True)


def test_predict_without_a_model_uses_the_shipped_one_and_says_so(published, media, tmp_path):
    """The same rows as the checkpoint it was published from, from a folder without params.yaml."""
    ckpt, _ = published
    two = media / "album" / "two.png"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rc, shipped_out, err = cli("predict", two, "--json", cwd=elsewhere)
    assert rc == 0, err
    assert "the model shipped in fer_models" in err and "trained on ckplus" in err
    rc, from_ckpt, _ = cli("predict", "--checkpoint", ckpt, two, "--json", cwd=elsewhere)
    a, b = json.loads(shipped_out), json.loads(from_ckpt)
    assert [r["status"] for r in a] == ["face", "face"]
    assert [(r["label"], r["box"]) for r in a] == [(r["label"], r["box"]) for r in b]
    for ra, rb in zip(a, b):
        assert ra["probabilities"] == pytest.approx(rb["probabilities"], abs=1e-6)


def test_predict_without_a_model_or_a_shipped_one_is_one_line(media, tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "PACKAGE_WEIGHTS", tmp_path / "no-weights")
    rc, out, err = cli("predict", media / "album" / "two.png", cwd=tmp_path)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "no model ships in" in err


def test_publish_without_the_shards_to_record_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "PACKAGE_WEIGHTS", tmp_path / "weights")
    ckpt = make_checkpoint(tmp_path / "models" / "ean-ckplus" / "checkpoint.pt")
    rc, _, err = cli("publish", "--checkpoint", ckpt, "--name", "ean", "--shards", tmp_path / "nowhere", cwd=tmp_path)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "nowhere: no shards folder" in err
    assert not (tmp_path / "weights" / "ean.pt").exists()


def test_publishing_the_same_checkpoint_twice_gives_the_same_bytes(tmp_path, monkeypatch):
    import os

    from fer_models.pretrained import publish

    model = fer_models.create_model("ean", num_classes=3, in_chans=1)
    monkeypatch.setattr(os, "getpid", lambda: 101)  # two publishing processes
    a = publish("ean", model, {"classes": ["a", "b", "c"]}, tmp_path / "a").read_bytes()
    monkeypatch.setattr(os, "getpid", lambda: 202)
    b = publish("ean", model, {"classes": ["a", "b", "c"]}, tmp_path / "b").read_bytes()
    assert a == b  # its sha256 names the weights, not the moment they were written
