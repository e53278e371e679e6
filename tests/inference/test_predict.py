"""Predict: detect, align and classify the face of a real photograph with a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.cli import main
from pipeline.core.params import load
from pipeline.inference.predictor import Predictor
from pipeline.training.checkpoint import build_model, save_checkpoint
from train_helpers import RECIPE


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A freshly initialised EAN checkpoint over three classes (prediction needs no training)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("predict") / "checkpoint.pt"
    model = build_model("ean", 3, 1, {})
    save_checkpoint(path, model, model="ean", model_args={}, num_classes=3, in_chans=1, recipe=RECIPE,
                    label_names=["anger", "happiness", "surprise"], label_ids=[1, 5, 7], dataset="rafdb")
    return path


def test_astronaut_has_one_face_with_probabilities_summing_to_one(checkpoint, project_root):
    import skimage.data

    predictor = Predictor(checkpoint, load(project_root / "params.yaml"))
    faces = predictor.predict_image(skimage.data.astronaut())
    assert len(faces) == 1
    face = faces[0]
    assert list(face.probabilities) == ["anger", "happiness", "surprise"]
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    x1, y1, x2, y2 = face.box
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200  # the astronaut's face
    # no face, no prediction
    assert predictor.predict_image(np.full((200, 200, 3), 127, np.uint8)) == []


def test_predict_cli_prints_json(checkpoint, project_root, tmp_path, capsys):
    import cv2
    import skimage.data

    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    assert main(["predict", "--checkpoint", str(checkpoint), str(photo), "--json",
                 "--params", str(project_root / "params.yaml")]) == 0
    out = json.loads(capsys.readouterr().out)
    (faces,) = out.values()
    assert len(faces) == 1 and sum(faces[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match="not-an-image.jpg: not a decodable image"):
        main(["predict", "--checkpoint", str(checkpoint), str(bad), "--params", str(project_root / "params.yaml")])
