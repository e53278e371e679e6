"""Decoding candidates into manifest records: the pure, per-chunk work of ingest.

:func:`decode_chunk` depends only on its argument (files are read, nothing is written), so
chunks can be decoded in any order, in threads, processes or Prefect tasks; the writer consumes
the results in scan order. Grey images stay one channel; every other mode becomes RGB.
"""

from __future__ import annotations

import hashlib
import io
from typing import Sequence

import numpy as np

from pipeline.ingest.readers.base import Quarantined, Record, ScanItem

# PIL modes kept as they are (after 8-bit conversion); everything else is converted to RGB.
_GREY_MODES = {"L", "1", "I;16", "I;16B", "I;16L", "I", "F", "LA"}


class DecodeError(ValueError):
    """An input that cannot become an image; ``reason`` is the quarantine code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _to_uint8_array(img) -> np.ndarray:
    """The pixels of a loaded PIL image as uint8: (H, W) for grey, (H, W, 3) otherwise."""
    mode = img.mode
    if mode in ("L", "1", "LA"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if mode in _GREY_MODES:  # 16/32-bit integer grey (PNG/TIFF) or float grey: map the range to 0..255
        arr = np.asarray(img, dtype=np.float64)
        hi = (1.0 if arr.max() <= 1.0 else 255.0) if mode == "F" else 65535.0
        return np.clip(np.rint(arr / hi * 255.0), 0, 255).astype(np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_file(path) -> np.ndarray:
    """Pixels of an image file (EXIF orientation applied); raises :class:`DecodeError`."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DecodeError("missing_image", f"{path}: cannot stat file ({exc})") from None
    if size == 0:
        raise DecodeError("empty_file", f"{path}: file is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            img.load()
            if img.getexif().get(0x0112, 1) != 1:  # EXIF orientation; skip the copy when upright
                img = ImageOps.exif_transpose(img)
            arr = _to_uint8_array(img)
    except UnidentifiedImageError:
        raise DecodeError("unreadable", f"{path}: not a recognisable image file") from None
    except (OSError, ValueError, SyntaxError) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "unreadable"
        raise DecodeError(reason, f"{path}: cannot decode image ({exc})") from None
    if arr.size == 0:
        raise DecodeError("unreadable", f"{path}: image has no pixels")
    return arr


def decode_pixel_string(pixels: str, shape: tuple[int, int], source: str) -> np.ndarray:
    """A FER2013 space-separated pixel string as a uint8 array of ``shape``; raises :class:`DecodeError`.

    Parsed by numpy's text parser (6x faster than ``int()`` per token, the bulk of FER2013's
    ingest time); the slow token-by-token look only runs to name a bad value.
    """
    try:  # (numpy reads a blank string as one 0: treat it as no values)
        values = np.fromstring(pixels, dtype=np.int64, sep=" ") if pixels.strip() else np.empty(0, np.int64)
    except ValueError:
        bad = next((t for t in pixels.split() if not t.lstrip("-").isdigit()), pixels[:20])
        raise DecodeError("bad_pixels", f"{source}: pixel value {bad!r} is not an integer") from None
    expected = shape[0] * shape[1]
    if values.size != expected:
        raise DecodeError("wrong_pixel_count", f"{source}: {values.size} pixel values, expected {expected}")
    if values.min() < 0 or values.max() > 255:
        raise DecodeError("bad_pixels", f"{source}: pixel values outside 0..255")
    return values.astype(np.uint8).reshape(shape)


def encode_png(arr: np.ndarray, level: int = 3) -> bytes:
    """Lossless PNG bytes of a uint8 (H, W) or (H, W, 3) array; deterministic for equal input.

    ``level`` is the zlib level: on 562x762 colour photos 3 is ~2.6x faster than PIL's default 6
    and no larger (measured: 44 vs 116 ms, 457 vs 466 KiB); 1 is faster still, ~10% larger.
    """
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=int(level))
    return buf.getvalue()


def pixel_sha256(arr: np.ndarray) -> str:
    """SHA-256 hex of the decoded pixels (uint8, C order) — the identity used for duplicates."""
    return hashlib.sha256(np.ascontiguousarray(arr, dtype=np.uint8).tobytes()).hexdigest()


def decode_candidate(item: ScanItem, png_level: int = 3) -> Record | Quarantined:
    """Decode one candidate into a :class:`Record`, or quarantine it; a quarantined item passes through."""
    if isinstance(item, Quarantined):
        return item
    try:
        if item.pixels is not None:
            arr = decode_pixel_string(item.pixels, item.pixel_shape or (48, 48), item.source)
        else:
            arr = decode_file(item.path)
    except DecodeError as exc:
        return Quarantined(item.source, exc.reason, exc.detail)
    height, width = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    return Record(item, width, height, channels, pixel_sha256(arr), encode_png(arr, png_level))


def decode_chunk(items: Sequence[ScanItem], *, png_level: int = 3) -> list[Record | Quarantined]:
    """Decode a chunk of scan items, preserving their order (the unit of parallel work)."""
    return [decode_candidate(item, png_level) for item in items]
