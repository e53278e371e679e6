"""Classify the expressions of the faces in photographs with a trained checkpoint.

Every face is found by the aligner's MTCNN (detection settings of ``align.photos``) and warped
like the crops the checkpoint was trained on (``align.<its dataset>``: size, margin, colour),
then goes through the training pipeline's own decoding and evaluation transform, so a face is
seen exactly as a test image of that dataset is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np


@dataclass
class FacePrediction:
    """One face: where it is, how sure the detector is, and the class probabilities."""

    box: list[float]
    detector_prob: float | None
    label: str
    probabilities: dict[str, float]


def photo_align_settings(dataset: str | None, params: dict[str, Any] | None = None):
    """``align.<dataset>`` warp settings with ``align.photos`` detection (large, many-face photos)."""
    from pipeline.align.settings import AlignSettings
    from pipeline.core.params import section

    s = section("align", dataset, params=params)
    photos = section("align", "photos", params=params)
    s["detection"] = photos.get("detection", s.get("detection"))
    s["policy"] = "detect"
    return AlignSettings.from_dict(s, f"align.{dataset} (+ align.photos detection)")


class Predictor:
    """A checkpoint ready to classify aligned face crops and photographs."""

    def __init__(self, checkpoint: str | Path, params: dict[str, Any] | None = None) -> None:
        from pipeline.training.checkpoint import load_model
        from pipeline.training.transforms import eval_transform

        self.model, self.ckpt = load_model(checkpoint, "cpu")
        self.names = list(self.ckpt["label_names"])
        self.channels = int(self.ckpt["in_chans"])
        self.transform = eval_transform(self.ckpt["recipe"])
        self.settings = photo_align_settings(self.ckpt.get("dataset"), params)

    def classify_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Softmax probabilities ``(n, K)`` of aligned uint8 crops (grey or RGB)."""
        import torch

        from pipeline.align.image_io import encode_png
        from pipeline.shards.dataset import decode_image

        def as_stored(crop: np.ndarray) -> torch.Tensor:  # the pixels training read: PNG round trip
            img = decode_image(encode_png(crop), self.channels)
            return torch.from_numpy(np.ascontiguousarray(img[None] if img.ndim == 2 else img.transpose(2, 0, 1)))

        if not crops:
            return np.zeros((0, len(self.names)), np.float32)
        x = torch.stack([self.transform(as_stored(c)) for c in crops])
        with torch.no_grad():
            return torch.softmax(self.model(x), dim=1).numpy()

    def predict_image(self, image_rgb: np.ndarray) -> list[FacePrediction]:
        """Every face of an RGB photograph, most probable face first."""
        from pipeline.align.policy import align_faces

        faces = align_faces(image_rgb, self.settings)
        probs = self.classify_crops([crop for crop, _ in faces])
        out = []
        for (_, outcome), p in zip(faces, probs):
            out.append(FacePrediction(box=[round(float(v), 1) for v in outcome.box], detector_prob=outcome.prob,
                                      label=self.names[int(p.argmax())],
                                      probabilities={n: float(v) for n, v in zip(self.names, p)}))
        return out

    def predict_file(self, path: str | Path) -> list[FacePrediction]:
        """:meth:`predict_image` of an image file (a clear error when it does not decode)."""
        from pipeline.align.image_io import UndecodableImage, decode_rgb

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image")
        try:
            image = decode_rgb(path.read_bytes())
        except UndecodableImage:
            raise ValueError(f"{path}: not a decodable image") from None
        return self.predict_image(image)
