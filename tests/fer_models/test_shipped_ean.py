"""The EAN shipped inside fer_models (issue 32): its file is the one its card hashes, its classes are
FER2013's, and it gives the ten reference faces the logits of the checkpoint it was published from
(``shipped_ean_reference.json``, written by ``make_shipped_reference.py``)."""

from __future__ import annotations

import hashlib
import json

import torch
from make_shipped_reference import REFERENCE, network_input

import fer_models
from fer_models import pretrained as shipped

FER2013_CLASSES = {"anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"}


def _card() -> dict:
    return json.loads((shipped.PACKAGE_WEIGHTS / "ean.json").read_text())


def test_the_shipped_file_is_the_one_its_card_hashes():
    card = _card()
    data = (shipped.PACKAGE_WEIGHTS / card["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == card["sha256"]
    assert len(data) < 400_000  # small enough to ship: 43,840 parameters
    assert set(card["classes"]) == FER2013_CLASSES and len(card["classes"]) == 7
    prov = card["provenance"]
    assert prov["dataset"] == "fer2013" and prov["dvc"]["shards"]["md5"].endswith(".dir")
    assert prov["command"].startswith("python bench/fer2013.py ")


def test_the_shipped_ean_gives_the_logits_of_its_checkpoint():
    card, ref = _card(), json.loads(REFERENCE.read_text())
    assert ref["weights_sha256"] == card["sha256"], "stale reference: run tests/fer_models/make_shipped_reference.py"
    assert ref["checkpoint_sha256"] == card["provenance"]["checkpoint_sha256"] and ref["classes"] == card["classes"]
    model = fer_models.create_model("ean", pretrained=True).eval()
    assert sum(p.numel() for p in model.parameters()) == 43_840
    faces = torch.tensor(ref["faces"], dtype=torch.uint8).view(-1, 48, 48).numpy()
    with torch.no_grad():
        logits = model(network_input(faces, card))
    want = torch.tensor(ref["logits"])
    assert logits.shape == want.shape == (10, 7)
    assert torch.allclose(logits, want, atol=1e-4), (logits - want).abs().max()
    assert len(set(logits.argmax(1).tolist())) > 1  # a trained network: not one answer for every face
