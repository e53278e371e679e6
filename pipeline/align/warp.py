"""Landmark alignment: a similarity transform of the 5 MTCNN landmarks onto a canonical template.

The template is the widely used ArcFace 112x112 5-point layout (insightface), made left-right
symmetric so the eyes are exactly level, and normalised to the unit square. ``margin`` shrinks
it towards the centre so the crop keeps forehead, chin and some background, which expression
recognition needs (ArcFace's tight crop cuts the chin).
"""

from __future__ import annotations

import numpy as np

#: ArcFace template (left eye, right eye, nose, left/right mouth corner) in 112-px units,
#: symmetrised about x = 56 and with both eyes (and both mouth corners) on one row.
_ARCFACE_112 = np.array([
    [38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041],
])


def _symmetric_unit_template() -> np.ndarray:
    t = _ARCFACE_112 / 112.0
    eye_dx = (t[1, 0] - t[0, 0]) / 2
    mouth_dx = (t[4, 0] - t[3, 0]) / 2
    eye_y = (t[0, 1] + t[1, 1]) / 2
    mouth_y = (t[3, 1] + t[4, 1]) / 2
    return np.array([
        [0.5 - eye_dx, eye_y], [0.5 + eye_dx, eye_y], [0.5, t[2, 1]],
        [0.5 - mouth_dx, mouth_y], [0.5 + mouth_dx, mouth_y],
    ])


UNIT_TEMPLATE = _symmetric_unit_template()

_INTERPOLATION = {"nearest": 0, "linear": 1, "cubic": 2, "area": 3, "lanczos": 4}  # cv2.INTER_*
_BORDER = {"constant": 0, "replicate": 1, "reflect": 4}  # cv2.BORDER_*


def template_points(size: int, margin: float) -> np.ndarray:
    """The 5 template points (``5 x 2``, pixels) of a ``size`` x ``size`` crop with ``margin``."""
    return ((UNIT_TEMPLATE - 0.5) / (1.0 + 2.0 * margin) + 0.5) * size


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The ``2 x 3`` least-squares similarity transform (rotation, uniform scale, shift) src -> dst.

    Umeyama's closed form (scikit-image ``SimilarityTransform``): deterministic, unlike RANSAC.
    """
    from skimage.transform import SimilarityTransform

    tform = SimilarityTransform.from_estimate(np.asarray(src, float), np.asarray(dst, float))
    if not tform or not np.all(np.isfinite(tform.params)):
        raise ValueError(f"degenerate landmarks: no similarity transform ({tform})")
    return tform.params[:2].astype(np.float64)


def warp_face(image: np.ndarray, landmarks: np.ndarray, size: int, margin: float,
              interpolation: str = "area", border: str = "replicate") -> np.ndarray:
    """The aligned ``size`` x ``size`` crop of the face whose 5 landmarks are given.

    When the face is much larger than the crop, the image is first downscaled with area
    interpolation (a warp alone would alias), then warped with ``interpolation``.
    """
    import cv2

    src = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    dst = template_points(size, margin)
    matrix = similarity_matrix(src, dst)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        pre = 2.0 * scale  # leave a 2x reduction to the warp itself
        h, w = image.shape[:2]
        image = cv2.resize(image, (max(1, round(w * pre)), max(1, round(h * pre))), interpolation=cv2.INTER_AREA)
        src = src * np.array([image.shape[1] / w, image.shape[0] / h])
        matrix = similarity_matrix(src, dst)
    flags = _INTERPOLATION[interpolation]
    if flags == cv2.INTER_AREA:  # warpAffine has no area mode; the pre-scale already did it
        flags = cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (size, size), flags=flags, borderMode=_BORDER[border])


def resize_square(image: np.ndarray, size: int, interpolation: str = "area") -> np.ndarray:
    """A pre-cropped face resized to ``size`` x ``size`` (centre-cropped to a square first)."""
    import cv2

    h, w = image.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    square = image[y:y + side, x:x + side]
    if side == size:
        return np.ascontiguousarray(square)
    flags = _INTERPOLATION[interpolation]
    if side < size and flags == cv2.INTER_AREA:
        flags = cv2.INTER_CUBIC  # area is for shrinking; enlarge smoothly
    return cv2.resize(square, (size, size), interpolation=flags)


def centre_crop(image: np.ndarray, size: int, fraction: float, interpolation: str = "area") -> np.ndarray:
    """The central square of side ``fraction`` x the shorter side, resized to ``size``."""
    h, w = image.shape[:2]
    side = max(1, int(round(min(h, w) * fraction)))
    y, x = (h - side) // 2, (w - side) // 2
    return resize_square(image[y:y + side, x:x + side], size, interpolation)
