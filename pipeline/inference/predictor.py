"""Classify the expressions of the faces in photographs and video frames with a trained model.

Every face is found by the aligner's MTCNN (the model's detection settings for ``photos`` or
``video``) and warped like the crops the model was trained on (its ``align`` settings: size,
margin, colour), then goes through the training pipeline's own decoding and evaluation transform,
so a face is seen exactly as a test image of that dataset is. The network runs in PyTorch (a
checkpoint or a TorchScript export) or ONNX Runtime (an ONNX export): see
:mod:`pipeline.inference.backends`; what the model needs around it: :mod:`pipeline.inference.spec`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.inference.spec import ModelSpec


@dataclass
class FacePrediction:
    """One face: where it is, how sure the detector is, and the class probabilities."""

    box: list[float]
    detector_prob: float | None
    label: str
    probabilities: dict[str, float]

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


class Predictor:
    """A model ready to classify aligned face crops, photographs and video frames.

    Build one with :meth:`open` (a checkpoint or an exported file), or from a spec and a backend.
    """

    def __init__(self, spec: ModelSpec, backend: Any) -> None:
        from pipeline.training.transforms import eval_transform

        self.spec, self.backend = spec, backend
        self.names = list(spec.class_names)
        self.channels = spec.channels
        self.device = str(getattr(backend, "device", "cpu"))  # MTCNN runs where the network does
        self.transform = eval_transform({"input": spec.input})
        self._settings: dict[str, Any] = {}

    @classmethod
    def open(cls, checkpoint: str | os.PathLike | None = None, model: str | os.PathLike | None = None,
             params: str | os.PathLike | None = None, device: str | None = None,
             threads: int | None = None) -> "Predictor":
        """:func:`pipeline.inference.backends.open_model`, ready to predict."""
        from pipeline.inference.backends import open_model

        return cls(*open_model(checkpoint=checkpoint, model=model, params=params, device=device, threads=threads))

    def settings(self, kind: str = "photos"):
        """The :class:`~pipeline.align.settings.AlignSettings` of ``photos`` or ``video``."""
        if kind not in self._settings:
            self._settings[kind] = self.spec.align_settings(kind, self.device)
        return self._settings[kind]

    def preprocess(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """The float32 ``(n, C, H, W)`` network input of aligned uint8 crops (grey or RGB)."""
        import torch

        from pipeline.align.image_io import encode_png
        from pipeline.shards.dataset import decode_image

        def as_stored(crop: np.ndarray) -> torch.Tensor:  # the pixels training read: PNG round trip
            img = decode_image(encode_png(crop), self.channels)
            return torch.from_numpy(np.ascontiguousarray(img[None] if img.ndim == 2 else img.transpose(2, 0, 1)))

        if not len(crops):
            return np.zeros((0, *self.spec.input_shape), np.float32)
        return torch.stack([self.transform(as_stored(c)) for c in crops]).numpy()

    def classify_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Softmax probabilities ``(n, K)`` of aligned uint8 crops (grey or RGB)."""
        x = self.preprocess(crops)
        if not len(x):
            return np.zeros((0, len(self.names)), np.float32)
        from pipeline.inference.backends import softmax

        return softmax(self.backend(x))

    def detect(self, image_rgb: np.ndarray, kind: str = "photos") -> list:
        """MTCNN faces of an RGB image with the ``kind`` detection settings, best first (MTCNN in
        NHWC: twice as fast on a CPU as the align stage's NCHW)."""
        from pipeline.align.detector import detect_faces
        from pipeline.align.image_io import to_rgb

        s = self.settings(kind)
        return detect_faces([to_rgb(image_rgb)], s.detection, s.device, channels_last=True)[0]

    def predict_image(self, image_rgb: np.ndarray, kind: str = "photos", faces: Sequence | None = None
                      ) -> list[FacePrediction]:
        """Every face of an RGB photograph (or video frame: ``kind="video"``), most probable face
        first; ``faces`` already found (a tracker's) skip the detection."""
        from pipeline.align.policy import align_faces

        if faces is None:
            faces = self.detect(image_rgb, kind)
        aligned = align_faces(image_rgb, self.settings(kind), faces=faces)
        probs = self.classify_crops([crop for crop, _ in aligned])
        out = []
        for (_, outcome), p in zip(aligned, probs):
            out.append(FacePrediction(box=[round(float(v), 1) for v in outcome.box], detector_prob=outcome.prob,
                                      label=self.names[int(p.argmax())],
                                      probabilities={n: float(v) for n, v in zip(self.names, p)}))
        return out

    def predict_file(self, path: str | Path) -> list[FacePrediction]:
        """:meth:`predict_image` of an image file (:class:`~pipeline.inference.sources.Unreadable`
        naming the file when it does not decode)."""
        from pipeline.inference.sources import read_image

        return self.predict_image(read_image(path))
