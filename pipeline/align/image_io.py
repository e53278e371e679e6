"""Decode manifest images to RGB uint8 arrays and encode crops as deterministic PNG bytes."""

from __future__ import annotations

import numpy as np


class UndecodableImage(ValueError):
    """Bytes that are not an image OpenCV can decode."""


def decode_rgb(data: bytes) -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, TIFF...) to an ``H x W x 3`` RGB uint8 array.

    Grayscale is replicated to three channels, the alpha channel of RGBA is dropped, 16-bit
    images are reduced to 8 bits: MTCNN needs uint8 RGB whatever the source holds.

    Raises:
        UndecodableImage: when the bytes do not decode to an image.
    """
    import cv2

    buf = np.frombuffer(data or b"", dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise UndecodableImage("not a decodable image")
    return to_rgb(img, bgr=True)


def to_rgb(img: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Any 2-D / 3-D image array as ``H x W x 3`` uint8 RGB (``bgr`` marks OpenCV channel order)."""
    import cv2

    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise UndecodableImage(f"unsupported image shape {img.shape}")
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR if bgr else cv2.COLOR_RGBA2RGB)
    if bgr:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


def convert_colour(rgb: np.ndarray, colour: str) -> np.ndarray:
    """An RGB crop in the stored colour mode: ``grey`` (H x W) or ``rgb`` (H x W x 3)."""
    import cv2

    if colour == "grey":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if colour == "rgb":
        return rgb
    raise ValueError(f"colour must be 'grey' or 'rgb', got {colour!r}")


def encode_png(img: np.ndarray) -> bytes:
    """Lossless PNG bytes of a grey (H x W) or RGB (H x W x 3) uint8 crop; same array, same bytes."""
    import cv2

    arr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError(f"PNG encoding failed for an array of shape {img.shape}")
    return buf.tobytes()
