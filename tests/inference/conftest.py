"""Fixtures of the predict and export tests: a checkpoint with decisive outputs, and generated media."""

from __future__ import annotations

import pytest
from inference_helpers import HEADS, make_checkpoint, moving_face_frames, photo, write_video


@pytest.fixture(scope="package")
def checkpoint(tmp_path_factory):
    """In a folder with no params.yaml above it: the built-in alignment and detection apply."""
    return make_checkpoint(tmp_path_factory.mktemp("model") / "checkpoint.pt")


@pytest.fixture(scope="package")
def media(tmp_path_factory):
    """A folder of inputs: two photos with faces (one nested), one without, an undecodable file, a
    loose photo for a glob, and a 6-frame video (10 fps) of a face moving to the right."""
    import cv2
    import numpy as np

    root = tmp_path_factory.mktemp("media")
    for i, (rel, heads) in enumerate(HEADS.items()):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), photo(10 + i, 320, 240, heads))
    cv2.imwrite(str(root / "album" / "empty.png"), np.full((240, 320, 3), 128, np.uint8))
    (root / "album" / "broken.jpg").write_bytes(b"\xff\xd8 this is no JPEG")
    write_video(root / "clip.avi", moving_face_frames(6), fps=10.0)
    return root
