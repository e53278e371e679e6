"""FaceTracker: faces followed in small windows between whole-frame detections, where a full
detection finds them, and a lost face sends the frame back to a whole-frame detection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from inference_helpers import moving_face_frames

from pipeline.align.detector import detect_faces
from pipeline.align.settings import DetectionSettings
from pipeline.inference.spec import DEFAULT_DETECTION
from pipeline.inference.tracking import FaceTracker, iou

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_followed_faces_are_where_a_full_detection_finds_them():
    settings = DetectionSettings.from_dict(DEFAULT_DETECTION["video"], "video")
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in moving_face_frames(7)]
    tracker = FaceTracker(settings, redetect_every=5)
    followed = [tracker(f) for f in frames]
    assert tracker.full_detections == 2  # frames 0 and 5
    for frame, faces in zip(frames, followed):
        (full,) = detect_faces([frame], settings, channels_last=True)[0]
        (face,) = faces
        assert iou(face.box, full.box) > 0.8
        assert np.abs(face.landmarks - full.landmarks).max() < 6  # pixels, face ~90 px wide
    blank = np.full_like(frames[0], 128)
    assert tracker(blank) == [] and tracker.full_detections == 3  # lost: detected on the whole frame
    assert len(tracker(frames[0])) == 1 and tracker.full_detections == 4  # nothing to follow: whole frame


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
