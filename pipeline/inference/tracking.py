"""Faces of consecutive video frames, found faster by looking where they just were.

MTCNN's cost grows with the pixels its image pyramid covers. In a video a face moves little
between two processed frames, so :class:`FaceTracker` runs MTCNN on the whole frame only every
``redetect_every`` processed frames (new faces appear there) and on a small window around each
face of the previous frame in between: the window is twice the face's size, scaled so that the
face is about :data:`WINDOW_FACE_PX` pixels, and searched for faces of half to twice that size.
A face the window loses (or finds in a neighbour's place) sends that frame back to a full
detection. ONet sees every face at 48 x 48 pixels whatever the frame size, so the landmarks (and
the aligned crop, warped from the full frame) are as precise as a full-frame detection's.
``bench/predict.py`` measures the gain: 1.4-2x less detection time per 640x480 frame (its RNet and
ONet stages, which run per candidate box, cost as much as the small pyramid).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.align.detector import Face, detect_faces
from pipeline.align.settings import DetectionSettings

#: a face's size in the working window (ONet's input is 48 px: nothing finer is used)
WINDOW_FACE_PX = 48
#: window side / face side: room for the motion between two processed frames
WINDOW_SCALE = 2.0
#: boxes overlapping more than this (intersection over union) are the same face
SAME_FACE_IOU = 0.5


def iou(a, b) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _shift(face: Face, dx: float, dy: float) -> Face:
    x1, y1, x2, y2 = face.box
    box = tuple(round(v, 2) for v in (x1 + dx, y1 + dy, x2 + dx, y2 + dy))
    return Face(box=box, landmarks=np.round(face.landmarks + [dx, dy], 2), prob=face.prob)


class FaceTracker:
    """Call it on each processed frame (RGB) in order; it returns the frame's faces, best first.

    Args:
        detection: the full-frame MTCNN settings (``align.video.detection``).
        redetect_every: a full-frame detection every this many calls (1 = every frame).
        device: where MTCNN runs.
    """

    def __init__(self, detection: DetectionSettings, redetect_every: int = 10, device: str = "cpu") -> None:
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be >= 1, got {redetect_every}")
        self.detection, self.redetect_every, self.device = detection, redetect_every, device
        self.window = dataclasses.replace(detection, max_side=int(WINDOW_FACE_PX * WINDOW_SCALE), min_side=0,
                                          pad=0.0, min_face_size=WINDOW_FACE_PX // 2, batch_size=1)
        self.faces: list[Face] = []
        self.calls = 0
        self.full_detections = 0

    def reset(self) -> None:
        """Forget the faces (a new video)."""
        self.faces, self.calls = [], 0

    def __call__(self, frame: np.ndarray) -> list[Face]:
        due = self.calls % self.redetect_every == 0
        self.calls += 1
        followed = None if due or not self.faces else self._follow(frame)
        if followed is None:
            self.full_detections += 1
            followed = detect_faces([frame], self.detection, self.device, channels_last=True)[0]
        self.faces = followed
        return followed

    def _follow(self, frame: np.ndarray) -> list[Face] | None:
        """Each previous face found again in its window, or ``None`` when one is lost."""
        h, w = frame.shape[:2]
        found: list[Face] = []
        for prev in self.faces:
            x1, y1, x2, y2 = prev.box
            cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * WINDOW_SCALE
            wx1, wy1 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
            wx2, wy2 = min(w, int(np.ceil(cx + side / 2))), min(h, int(np.ceil(cy + side / 2)))
            if wx2 - wx1 < 12 or wy2 - wy1 < 12:
                return None
            candidates = detect_faces([np.ascontiguousarray(frame[wy1:wy2, wx1:wx2])], self.window, self.device,
                                      channels_last=True)[0]
            if not candidates:
                return None
            near = min(candidates, key=lambda f: (f.box[0] + f.box[2] - 2 * (cx - wx1)) ** 2
                       + (f.box[1] + f.box[3] - 2 * (cy - wy1)) ** 2)
            found.append(_shift(near, wx1, wy1))
        kept: list[Face] = []
        for face in sorted(found, key=lambda f: -f.prob):
            if all(iou(face.box, k.box) <= SAME_FACE_IOU for k in kept):
                kept.append(face)
        return kept if len(kept) == len(found) else None  # two windows on one face: one face was lost
