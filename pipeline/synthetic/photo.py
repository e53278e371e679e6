"""Whole pictures around a rendered face: backgrounds, framing, camera effects, encodings.

``picture`` composes a background, one person (:func:`pipeline.synthetic.faces.render`) and the
camera: lighting gradient, blur, sensor noise. Framings say where the face sits in the picture:
a lab portrait (CK+, JAFFE, KDEF), a tight crop (FER2013, CK+48, RAF-DB aligned) or an
off-centre snapshot with clutter (RAF-DB original). Encoders produce deterministic bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from pipeline.synthetic.faces import Identity, Scene, render


@dataclass(frozen=True)
class Camera:
    """Per-picture capture effects (sigma of Gaussian blur in pixels, noise std in 0..1 units)."""

    blur: float = 0.6
    noise: float = 0.02
    gain: float = 1.0          # exposure multiplier
    vignette: float = 0.15


def background(rng: np.random.Generator, h: int, w: int, kind: str = "studio") -> np.ndarray:
    """A float32 BGR background: ``studio`` (smooth, plain) or ``clutter`` (shapes, texture)."""
    import cv2

    base = rng.uniform(0.25, 0.85, 3).astype(np.float32)
    if kind == "studio":
        base = np.full(3, rng.uniform(0.35, 0.85), np.float32) * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    other = np.clip(base * rng.uniform(0.6, 1.2, 3), 0, 1).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = ((gx / w - 0.5) * np.cos(ang) + (gy / h - 0.5) * np.sin(ang) + 0.5)[..., None]
    img = base * (1 - t) + other * t
    if kind == "clutter":
        for _ in range(int(rng.integers(4, 10))):
            col = tuple(float(c) for c in rng.uniform(0, 1, 3))
            cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
            a, b = int(rng.integers(w // 12 + 1, w // 2 + 2)), int(rng.integers(h // 12 + 1, h // 2 + 2))
            if rng.random() < 0.5:
                cv2.rectangle(img, (cx - a, cy - b), (cx + a, cy + b), col, -1)
            else:
                cv2.ellipse(img, (cx, cy), (a, b), float(rng.uniform(0, 180)), 0, 360, col, -1)
        img = cv2.GaussianBlur(img, (0, 0), max(1.0, w / 80))
        tex = cv2.resize(rng.normal(0, 0.05, (max(2, h // 8), max(2, w // 8))).astype(np.float32), (w, h))
        img += tex[..., None]
    return np.clip(img, 0, 1).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _vignette(h: int, w: int) -> np.ndarray:
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    return ((gx / w - 0.5) ** 2 + (gy / h - 0.5) ** 2) * 2


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed 1024x1024 field of unit Gaussian noise; pictures take shifted windows of it.

    Drawing fresh noise for every 640x490 frame costs more than the face; a window at a random
    offset (and flip) of one fixed field is just as random-looking and fully deterministic.
    """
    return np.random.default_rng(20131).standard_normal((1024, 1024), dtype=np.float32)


def noise_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An h x w window of :func:`_noise_bank` at a random offset and orientation."""
    bank = _noise_bank()
    if h > bank.shape[0] or w > bank.shape[1]:
        return rng.standard_normal((h, w), dtype=np.float32)
    oy = int(rng.integers(0, bank.shape[0] - h + 1))
    ox = int(rng.integers(0, bank.shape[1] - w + 1))
    win = bank[oy:oy + h, ox:ox + w]
    return win[::-1] if rng.random() < 0.5 else win


def finish(img: np.ndarray, rng: np.random.Generator, cam: Camera) -> np.ndarray:
    """Apply exposure, vignette, blur and noise to a float BGR or grey image; return uint8."""
    import cv2

    h, w = img.shape[:2]
    extra = (None,) * (img.ndim - 2)
    if cam.blur > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), cam.blur)
    gain = cam.gain * (1 - cam.vignette * _vignette(h, w)) if cam.vignette > 0 else np.float32(cam.gain)
    img = img * gain[(...,) + extra] if np.ndim(gain) else img * gain
    if cam.noise > 0:
        img += (cam.noise * noise_field(rng, h, w))[(...,) + extra]
    np.clip(img, 0.0, 1.0, out=img)
    img *= 255.0
    img += 0.5
    return img.astype(np.uint8)


def picture(rng: np.random.Generator, ident: Identity, knobs: Mapping[str, float], h: int, w: int,
            scene: Scene, bg: np.ndarray | None = None, cam: Camera | None = None,
            bg_kind: str = "studio", max_scale: float = 48.0, grey: bool = False) -> np.ndarray:
    """A uint8 BGR picture (h x w; h x w grey with ``grey``) of ``ident`` showing ``knobs`` in ``scene``.

    Large faces are drawn at a reduced resolution (at most ``max_scale`` pixels per face unit,
    i.e. a face ~96 px wide) and upsampled: the detail a 44-112 px crop keeps is unchanged,
    and a 640x490 frame costs a quarter of the time. Noise is added at full resolution.
    """
    import cv2

    cam = cam or Camera()
    f = min(1.0, max_scale / scene.scale)
    lw, lh = max(1, round(w * f)), max(1, round(h * f))
    if bg is None:
        img = background(rng, lh, lw, bg_kind)
    else:
        img = bg.copy() if bg.shape[:2] == (lh, lw) else cv2.resize(bg, (lw, lh), interpolation=cv2.INTER_AREA)
    if f < 1.0:
        scene = dataclasses.replace(scene, cx=(scene.cx + 0.5) * f - 0.5, cy=(scene.cy + 0.5) * f - 0.5,
                                    scale=scene.scale * f)
    render(img, ident, knobs, scene)
    if grey:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if f < 1.0:  # blur at the drawing resolution, then upsample (which smooths as well)
        if cam.blur * f > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), cam.blur * f)
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        cam = dataclasses.replace(cam, blur=0.0)
    return finish(img, rng, cam)


def random_scene(rng: np.random.Generator, cx: float, cy: float, scale: float, roll_deg: float = 6.0,
                 yaw_deg: float = 6.0, jitter: float = 0.0) -> Scene:
    """A scene with the head near (cx, cy), jittered pose and random key light."""
    lx = rng.uniform(-0.6, 0.6)
    ly = rng.uniform(-0.6, -0.1)
    return Scene(
        cx=float(cx + rng.normal(0, jitter * scale)), cy=float(cy + rng.normal(0, jitter * scale)),
        scale=float(scale), roll=float(np.deg2rad(rng.uniform(-roll_deg, roll_deg))),
        yaw=float(np.deg2rad(rng.uniform(-yaw_deg, yaw_deg))),
        light=(float(lx), float(ly), 0.85), ambient=float(rng.uniform(0.35, 0.6)),
        gaze=float(rng.uniform(-0.3, 0.3)),
    )


def resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area-averaged resize (anti-aliased when shrinking)."""
    import cv2

    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def encode_png(img: np.ndarray) -> bytes:
    """Lossless PNG bytes (grey or BGR uint8); deterministic. Level 1: noisy frames barely compress, level 6 costs 5x."""
    import cv2

    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(img: np.ndarray, quality: int = 92) -> bytes:
    """Baseline JPEG bytes (grey or BGR uint8); deterministic for one libjpeg build."""
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def encode_tiff(grey: np.ndarray) -> bytes:
    """Uncompressed 8-bit grayscale TIFF bytes (as JAFFE ships), written with PIL."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buf, format="TIFF")
    return buf.getvalue()
