"""Helpers of the predict and export tests: generated pictures and videos (drawn faces of
pipeline.synthetic on a cluttered background, at known places), a checkpoint with decisive
outputs, and the CLI run in-process from a chosen directory."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.training.checkpoint import build_model, save_checkpoint
from train_helpers import RECIPE

NAMES = ["anger", "happiness", "surprise"]
#: where the generated faces are: file -> [(centre x, centre y, face width)]
HEADS = {"album/two.png": [(85, 125, 80), (235, 120, 84)], "album/nested/one.jpg": [(160, 118, 90)],
         "loose/extra.png": [(150, 120, 86)]}


def make_checkpoint(path: Path, dataset: str = "ckplus", gain: float = 2.5) -> Path:
    """An untrained EAN over three classes whose weights are scaled by ``gain`` (each >1-D tensor),
    so its probabilities differ from face to face instead of all being about 1/3."""
    torch.manual_seed(0)
    model = build_model("ean", 3, 1, {})
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(gain)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model, model="ean", model_args={}, num_classes=3, in_chans=1, recipe=RECIPE,
                    label_names=NAMES, label_ids=[1, 5, 7], dataset=dataset)
    return path


def cli(*argv, cwd) -> tuple[int, str, str]:
    """``fer-pipeline`` run in-process from ``cwd``; returns exit status, stdout, stderr."""
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.chdir(cwd)
        mp.delenv("FER_PARAMS", raising=False)
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()

def photo(seed: int, w: int, h: int, heads: list[tuple[float, float, float]], label: str = "happiness") -> np.ndarray:
    """A BGR uint8 picture with one drawn face per ``(centre x, centre y, face width px)``."""
    from pipeline.synthetic.expressions import expression_knobs
    from pipeline.synthetic.faces import render, sample_identity
    from pipeline.synthetic.photo import Camera, background, finish, random_scene

    rng = np.random.default_rng(seed)
    img = background(rng, h, w, "clutter")
    for cx, cy, px in heads:
        ident = sample_identity(rng, glasses_p=0.0)
        render(img, ident, expression_knobs(label, 1.0, ident.style),
               random_scene(rng, cx, cy, px / 2, roll_deg=3, yaw_deg=3))
    return finish(img, rng, Camera(blur=0.6, noise=0.01, vignette=0.0))


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """``frames`` (BGR) as a video OpenCV reads back (.mp4: mp4v, .avi: MJPG)."""
    import cv2

    h, w = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def moving_face_frames(n: int, w: int = 320, h: int = 240, face_px: float = 90.0, seed: int = 3) -> list[np.ndarray]:
    """``n`` frames (BGR) of one face moving right by 4 px a frame: windows of one wider drawing,
    the face at ``x = w / 2 - 4 (n - i)`` in frame ``i``."""
    base = photo(seed, w + 4 * n, h, [(w / 2, h / 2, face_px)])
    return [np.ascontiguousarray(base[:, 4 * (n - i): 4 * (n - i) + w]) for i in range(n)]
