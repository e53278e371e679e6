"""Procedural, shaded faces drawn with numpy and OpenCV: identities, scenes, one render call.

The head is modelled as a stack of horizontal circles (a solid of revolution around the vertical
axis, with a tapered jaw), so that yaw is a true rotation: every feature is placed in the *head
frame* (x right, y down, z towards the camera; unit = half the face width at the cheekbones,
origin between the cheekbones) and projected; every pixel of the head is mapped back to the head
frame to shade skin, hair, eye sockets, nose and cheeks analytically (vectorised over the head's
bounding box). Crisp features (eyes with white sclera and dark iris, brows, nostrils, lips, teeth,
wrinkles, glasses) are anti-aliased OpenCV polygons drawn in small local masks.

Why this much shading: MTCNN was trained on photographs. Flat cartoon faces are found poorly;
faces with a lit, shaded head, dark eye sockets, eye whites with dark irises, a nose shadow, lips,
hair, neck and shoulders are found reliably (see ``bench/sample_detection.py``).

All randomness comes from the ``numpy.random.Generator`` passed in, so a seed fixes every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

# skin tones (BGR, 0..1) from very light to very dark; an identity interpolates between neighbours
_SKIN_TONES = np.array([
    [0.78, 0.86, 0.96], [0.66, 0.78, 0.93], [0.55, 0.69, 0.87], [0.45, 0.60, 0.80],
    [0.34, 0.47, 0.66], [0.25, 0.35, 0.52], [0.17, 0.24, 0.36],
], dtype=np.float32)
_HAIR = np.array([
    [0.06, 0.06, 0.07], [0.10, 0.13, 0.20], [0.14, 0.22, 0.35], [0.30, 0.50, 0.70],
    [0.12, 0.20, 0.45], [0.55, 0.56, 0.58], [0.04, 0.05, 0.10],
], dtype=np.float32)
_IRIS = np.array([[0.08, 0.14, 0.25], [0.05, 0.08, 0.12], [0.45, 0.35, 0.20], [0.30, 0.40, 0.30]],
                 dtype=np.float32)


@dataclass(frozen=True)
class Identity:
    """A subject: stable geometry, colours, hair and accessories (units: half face width)."""

    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    lips: np.ndarray
    clothes: np.ndarray
    fw: float            # half face width at the cheekbones
    top: float           # crown above the origin
    chin: float          # chin below the origin
    jaw: float           # taper of the lower face (0 round .. 0.45 pointed)
    eye_dx: float        # eye centre distance from the midline
    eye_y: float
    eye_w: float         # half width of the eye opening
    eye_h: float         # half height of the upper lid arc
    brow_y: float
    brow_thick: float
    nose_y: float        # nose tip
    nose_w: float        # half width of the nose wings
    mouth_y: float
    mouth_w: float       # half width of the mouth
    lip_th: float        # lip fullness
    hairline: float      # y of the hairline on the midline
    hair_style: int      # 0 short, 1 long, 2 cropped / receding
    hair_part: float     # -1..1: side of the parting (sweeps the fringe)
    glasses: bool
    beard: float         # 0 none .. ~0.6 dark stubble
    smirk_side: int      # which lip corner a smirk lifts (-1 image left, +1 image right)
    style: Mapping[str, float] = field(default_factory=dict)


def sample_identity(rng: np.random.Generator, sex: str | None = None, skin_range: tuple[int, int] = (0, 6),
                    glasses_p: float = 0.15, style: Mapping[str, float] | None = None) -> Identity:
    """A random identity. ``sex`` ``"F"``/``"M"`` biases hair and beard; ``skin_range`` limits the tones."""
    from pipeline.synthetic.expressions import sample_style

    sex = sex or ("F" if rng.random() < 0.5 else "M")
    lo, hi = skin_range
    t = rng.uniform(lo, hi)
    i = min(int(t), len(_SKIN_TONES) - 2)
    skin = _SKIN_TONES[i] * (1 - (t - i)) + _SKIN_TONES[i + 1] * (t - i)
    skin = np.clip(skin * rng.uniform(0.95, 1.05, 3), 0, 1).astype(np.float32)
    # hair that stands out from the skin (a dark face framed by equally dark hair loses its outline)
    lum = _HAIR @ np.array([0.114, 0.587, 0.299], np.float32)
    contrast = np.abs(lum - float(skin @ np.array([0.114, 0.587, 0.299], np.float32))) >= 0.12
    choices = np.flatnonzero(contrast) if contrast.any() else np.arange(len(_HAIR))
    hair = _HAIR[choices[rng.integers(len(choices))]] * rng.uniform(0.85, 1.15)
    lips = np.clip(skin * np.array([0.58, 0.48, 0.85]) * rng.uniform(0.8, 0.95), 0, 1)
    clothes = rng.uniform(0.1, 0.9, 3).astype(np.float32)
    female = sex == "F"
    long_hair_p = 0.75 if female else 0.1
    hair_style = 1 if rng.random() < long_hair_p else (2 if (not female and rng.random() < 0.3) else 0)
    return Identity(
        skin=skin, hair=np.clip(hair, 0, 1).astype(np.float32),
        iris=_IRIS[rng.integers(len(_IRIS))], lips=lips.astype(np.float32), clothes=clothes,
        fw=1.0, top=float(rng.uniform(1.3, 1.45)), chin=float(rng.uniform(1.22, 1.38)),
        jaw=float(rng.uniform(0.22, 0.42) if female else rng.uniform(0.12, 0.32)),
        eye_dx=float(rng.uniform(0.36, 0.42)), eye_y=float(rng.uniform(-0.16, -0.06)),
        eye_w=float(rng.uniform(0.17, 0.21)), eye_h=float(rng.uniform(0.065, 0.085)),
        brow_y=float(rng.uniform(-0.40, -0.34)), brow_thick=float(rng.uniform(0.05, 0.075) * (0.85 if female else 1.1)),
        nose_y=float(rng.uniform(0.30, 0.40)), nose_w=float(rng.uniform(0.13, 0.18)),
        mouth_y=float(rng.uniform(0.66, 0.72)), mouth_w=float(rng.uniform(0.29, 0.35)),
        lip_th=float(rng.uniform(0.10, 0.14) * (1.1 if female else 0.9)),
        hairline=float(rng.uniform(-0.95, -0.8) if hair_style != 2 else rng.uniform(-1.15, -1.0)),
        hair_style=hair_style, hair_part=float(rng.uniform(-1, 1)),
        glasses=bool(rng.random() < glasses_p),
        beard=float(rng.uniform(0.2, 0.6)) if (not female and rng.random() < 0.3) else 0.0,
        smirk_side=int(rng.choice([-1, 1])),
        style=dict(style) if style is not None else sample_style(rng),
    )


@dataclass(frozen=True)
class Scene:
    """Where and how a head is drawn in an image.

    ``cx, cy`` is the head origin in pixels, ``scale`` pixels per unit (a face is ~2 units wide),
    ``roll`` in-plane rotation and ``yaw`` head turn (radians, positive turns the face towards
    image right), ``light`` a direction (x right, y down, z towards camera).
    """

    cx: float
    cy: float
    scale: float
    roll: float = 0.0
    yaw: float = 0.0
    light: tuple[float, float, float] = (-0.3, -0.4, 0.85)
    ambient: float = 0.45
    gaze: float = 0.0


class _Head:
    """Geometry of one head in one scene: head-frame <-> pixel mappings."""

    def __init__(self, ident: Identity, scene: Scene, chin_drop: float):
        self.id = ident
        self.sc = scene
        self.chin = ident.chin + chin_drop
        self.cr, self.sr = np.cos(scene.roll), np.sin(scene.roll)
        self.cy_, self.sy_ = np.cos(scene.yaw), np.sin(scene.yaw)

    def width(self, y: np.ndarray) -> np.ndarray:
        """Radius of the head's horizontal cross-section at height ``y``."""
        y = np.asarray(y, dtype=np.float32)
        up = self.id.fw * np.sqrt(np.clip(1 - (y / self.id.top) ** 2, 0, 1))
        t = np.clip(y / self.chin, 0, 1)
        down = self.id.fw * np.sqrt(np.clip(1 - t ** 2, 0, 1)) * (1 - self.id.jaw * t ** 2)
        return np.where(y < 0, up, down)

    def project(self, x: np.ndarray, y: np.ndarray, dz: float | np.ndarray = 0.0,
                on_surface: bool = True) -> np.ndarray:
        """Pixel coordinates (N, 2) of head-frame points (on the head surface, plus ``dz``)."""
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        if on_surface:
            w = self.width(y)
            z = np.sqrt(np.clip(w ** 2 - x ** 2, 0, None)) + dz
        else:
            z = np.zeros_like(x) + dz
        xr = x * self.cy_ + z * self.sy_
        px = self.sc.cx + self.sc.scale * (xr * self.cr - y * self.sr)
        py = self.sc.cy + self.sc.scale * (xr * self.sr + y * self.cr)
        return np.stack([px, py], axis=-1)

    def visible(self, x: float, y: float, dz: float = 0.0) -> bool:
        w = float(self.width(np.float32(y)))
        z = np.sqrt(max(w * w - x * x, 0.0)) + dz
        return -x * self.sy_ + z * self.cy_ > 0.05

    def bbox(self, h: int, w: int, margin: float = 0.35) -> tuple[int, int, int, int]:
        """Pixel box (x0, y0, x1, y1) holding the head and hair, clipped to the image."""
        r = self.sc.scale * (max(self.id.top, self.chin) + margin)
        x0, x1 = int(max(0, self.sc.cx - r)), int(min(w, self.sc.cx + r + 1))
        y0, y1 = int(max(0, self.sc.cy - r)), int(min(h, self.sc.cy + r + 1))
        return x0, y0, x1, y1

    def pixel_frame(self, box: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
        """Per-pixel camera-frame and head-frame coordinates over ``box`` (vectorised)."""
        x0, y0, x1, y1 = box
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        u = (gx - self.sc.cx) / self.sc.scale
        v = (gy - self.sc.cy) / self.sc.scale
        xr = u * self.cr + v * self.sr          # un-roll
        y = -u * self.sr + v * self.cr
        w = self.width(y)
        zr = np.sqrt(np.clip(w ** 2 - xr ** 2, 0, None))
        x = xr * self.cy_ - zr * self.sy_       # un-yaw to the head frame
        z = xr * self.sy_ + zr * self.cy_
        edge = (w - np.abs(xr)) * self.sc.scale  # distance to the silhouette in pixels
        return {"xr": xr, "y": y, "zr": zr, "w": w, "x": x, "z": z, "edge": edge}


class Canvas:
    """A float32 BGR image with anti-aliased polygon fills restricted to their bounding boxes."""

    def __init__(self, img: np.ndarray):
        self.img = img
        self.h, self.w = img.shape[:2]

    def _mask(self, polys: list[np.ndarray], closed: bool, thickness: float, blur: float):
        pts = np.concatenate([p.reshape(-1, 2) for p in polys])
        pad = int(thickness + 3 * blur + 3)
        x0, y0 = np.floor(pts.min(0)).astype(int) - pad
        x1, y1 = np.ceil(pts.max(0)).astype(int) + pad
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, self.w), min(y1, self.h)
        if x1 <= x0 or y1 <= y0:
            return None, None
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        shifted = [np.round((p.reshape(-1, 2) - (x0, y0)) * 16).astype(np.int32) for p in polys]
        if thickness <= 0:
            import cv2
            cv2.fillPoly(mask, shifted, 255, cv2.LINE_AA, shift=4)
        else:
            import cv2
            cv2.polylines(mask, shifted, closed, 255, max(1, int(round(thickness))), cv2.LINE_AA, shift=4)
        m = mask.astype(np.float32) / 255.0
        if blur > 0.3:
            import cv2
            m = cv2.GaussianBlur(m, (0, 0), blur)
        return m, (x0, y0, x1, y1)

    def fill(self, polys, color, alpha: float = 1.0, blur: float = 0.0, clip: np.ndarray | None = None) -> None:
        """Fill polygon(s) (pixel coordinates) with ``color`` at opacity ``alpha``."""
        self._blend(polys, color, alpha, blur, closed=True, thickness=0, clip=clip)

    def stroke(self, polys, color, thickness: float, alpha: float = 1.0, blur: float = 0.0,
               closed: bool = False) -> None:
        """Draw polyline(s) of ``thickness`` pixels."""
        self._blend(polys, color, alpha, blur, closed=closed, thickness=thickness)

    def _blend(self, polys, color, alpha, blur, closed, thickness, clip=None):
        if alpha <= 0:
            return
        if isinstance(polys, np.ndarray):
            polys = [polys]
        m, box = self._mask(polys, closed, thickness, blur)
        if m is None:
            return
        x0, y0, x1, y1 = box
        a = m * alpha
        if clip is not None:
            a = a * clip[y0:y1, x0:x1]
        sub = self.img[y0:y1, x0:x1]
        color = np.asarray(color, np.float32)
        sub += (color - sub) * a[..., None]

    def mask_of(self, polys) -> np.ndarray:
        """A full-image float mask of filled polygon(s) (used to clip irises to the eye opening)."""
        full = np.zeros((self.h, self.w), np.float32)
        m, box = self._mask(polys if isinstance(polys, list) else [polys], True, 0, 0)
        if m is not None:
            x0, y0, x1, y1 = box
            full[y0:y1, x0:x1] = m
        return full


def _gauss(x, y, cx, cy, sx, sy):
    return np.exp(-(((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _curve(p0, p1, p2, n=16):
    """Quadratic Bezier through control points (head frame), ``n`` points as two arrays."""
    t = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t ** 2 * np.array(p2)
    return pts[:, 0], pts[:, 1]


def render(img: np.ndarray, ident: Identity, knobs: Mapping[str, float], scene: Scene) -> None:
    """Draw one person (shoulders, neck, head, hair, face) into ``img`` (float32 BGR 0..1) in place."""
    k = dict(knobs)
    chin_drop = 0.28 * k.get("jaw_open", 0.0) * (1 - 0.5 * k.get("mouth_round", 0.0))
    head = _Head(ident, scene, chin_drop)
    cv = Canvas(img)
    _body(cv, head)
    _head_and_shading(cv, head, k)
    _brows(cv, head, k)
    _eyes(cv, head, k)
    _nose(cv, head, k)
    _mouth(cv, head, k)
    _wrinkles(cv, head, k)
    _hair_front(cv, head)
    if ident.glasses:
        _glasses(cv, head, k)


def _body(cv: Canvas, head: _Head) -> None:
    """Shoulders (clothes) and neck, in the camera plane below the head."""
    i, sc = head.id, head.sc
    shift = 0.35 * head.sy_
    def P(x, y):
        return head.project(np.asarray(x, np.float32) + shift, np.asarray(y, np.float32), on_surface=False)
    sh_y = i.chin + 0.55
    xs = np.linspace(-3.2, 3.2, 33, dtype=np.float32)
    ys = sh_y + 0.1 + 0.55 * np.clip((np.abs(xs) - 0.5) / 1.7, 0, 1) ** 1.5
    xs = np.concatenate([xs, [3.2, -3.2]]).astype(np.float32)
    ys = np.concatenate([ys, [6.0, 6.0]]).astype(np.float32)
    body = P(xs, ys)
    cv.fill(body, i.clothes, blur=0.6)
    # shading across the shoulders
    cv.fill(P([-3.2, -1.2, -1.0, -3.2], [sh_y, sh_y, 6, 6]), i.clothes * 0.7, alpha=0.5, blur=sc.scale * 0.3)
    # neck, darker under the jaw
    neck = P([-0.42, 0.42, 0.48, 0.2, -0.2, -0.48], [0.6, 0.6, sh_y + 0.25, sh_y + 0.45, sh_y + 0.45, sh_y + 0.25])
    cv.fill(neck, i.skin * 0.8, blur=0.6)
    cv.fill(P([-0.42, 0.42, 0.42, -0.42], [0.6, 0.6, i.chin + 0.25, i.chin + 0.25]), i.skin * 0.45,
            alpha=0.6, blur=sc.scale * 0.08)
    if i.hair_style == 1:  # long hair falls behind the shoulders
        t = np.linspace(np.pi, 2 * np.pi, 17, dtype=np.float32)
        bottom = sh_y + 0.35
        xs = np.concatenate([[-1.2], 1.2 * np.cos(t), [1.2, 0.9, 0.0, -0.9]]).astype(np.float32)
        ys = np.concatenate([[bottom - 0.2], 1.0 * np.sin(t) * i.top / 1.35 - 0.1,
                             [bottom - 0.2, bottom, bottom + 0.05, bottom]]).astype(np.float32)
        cv.fill(P(xs, ys), i.hair * 0.8, blur=max(0.8, sc.scale * 0.03))
    # ears
    for side in (-1, 1):
        ex = side * i.fw * 0.97
        if head.visible(ex * 0.9, 0.1):
            c = head.project(np.float32(ex), np.float32(0.1), on_surface=False)
            t2 = np.linspace(0, 2 * np.pi, 20)
            pts = c + sc.scale * np.stack([0.12 * np.cos(t2) * abs(head.cy_) + side * 0.05, 0.24 * np.sin(t2)], -1)
            cv.fill(pts.astype(np.float32), i.skin * 0.85, blur=0.6)


def _head_and_shading(cv: Canvas, head: _Head, k: Mapping[str, float]) -> None:
    """Skin with Lambert shading and analytic facial shadows; hair cap and sides; vectorised."""
    i, sc = head.id, head.sc
    box = head.bbox(cv.h, cv.w)
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return
    f = head.pixel_frame(box)
    x, y, z, xr, zr, w = f["x"], f["y"], f["z"], f["xr"], f["zr"], f["w"]
    alpha = np.clip(f["edge"] + 0.5, 0, 1) * (w > 1e-3)
    # normal in the camera frame
    wn = np.maximum(w, 1e-3)
    n = np.stack([xr / wn, 0.55 * y / np.where(y < 0, i.top, head.chin), zr / wn], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    L = np.asarray(sc.light, np.float32)
    L = L / np.linalg.norm(L)
    lam = np.clip(n @ L, 0, 1)
    shade = sc.ambient + (1 - sc.ambient) * lam
    # analytic features in the head frame (multiplicative darkening / brightening)
    d = np.zeros_like(x)
    for side in (-1, 1):
        ex = side * i.eye_dx
        d += 0.30 * _gauss(x, y, ex, i.eye_y - 0.03, 0.24, 0.16)             # eye socket
        d += 0.10 * _gauss(x, y, side * 0.16, (i.eye_y + i.nose_y) / 2, 0.05, 0.2)  # nose side
        d -= 0.08 * _gauss(x, y, side * 0.55, i.nose_y + 0.05, 0.2, 0.15)    # cheek highlight
        d += 0.06 * k.get("cheek_raise", 0) * _gauss(x, y, side * 0.5, i.eye_y + 0.28, 0.18, 0.1)
    d += 0.22 * _gauss(x, y, 0, i.nose_y + 0.1, 0.13, 0.05)                 # under the nose
    d -= 0.10 * _gauss(x, y, 0, i.nose_y - 0.08, 0.06, 0.12)                 # nose tip highlight
    d -= 0.06 * _gauss(x, y, 0, i.brow_y - 0.3, 0.4, 0.25)                   # forehead highlight
    d += 0.18 * _gauss(x, y, 0, i.mouth_y + 0.22 + 0.2 * k.get("jaw_open", 0), 0.18, 0.06)  # under the lip
    d += 0.15 * np.clip((y - (head.chin - 0.25)) / 0.25, 0, 1)               # under the chin
    if i.beard > 0:
        lower = np.clip((y - (i.nose_y + 0.05)) / 0.3, 0, 1) * np.clip((0.95 - np.abs(x)) / 0.2, 0, 1)
        d += i.beard * 0.5 * lower * (1 - _gauss(x, y, 0, i.mouth_y, i.mouth_w * 1.1, 0.08))
    skin = i.skin[None, None, :] * (shade * (1 - d))[..., None]
    # hair cap and sides, in the head frame (covers the back of the head when turned)
    hair = _hair_mask(head, x, y, z)
    hshade = 0.55 + 0.6 * lam
    strands = 1 + 0.10 * np.sin(60 * x + 9 * i.hair_part * y) * np.sin(23 * y)
    hair_col = i.hair[None, None, :] * (hshade * strands)[..., None]
    col = skin * (1 - hair[..., None]) + hair_col * hair[..., None]
    sub = cv.img[y0:y1, x0:x1]
    sub += (col - sub) * alpha[..., None]


def _hair_mask(head: _Head, x, y, z) -> np.ndarray:
    """Soft 0..1 hair coverage from head-frame coordinates."""
    i = head.id
    part = i.hair_part
    hl = i.hairline + 0.22 * (x / i.fw) ** 2 - 0.06 * part * x   # hairline, receding at the temples
    if i.hair_style == 1:
        hl = hl + 0.05
    edge = 0.025 / max(head.sc.scale / 100.0, 0.2)
    m = np.clip((hl - y) / edge + 0.5, 0, 1)
    # sides above the ears, and the back of the head
    side_lim = -0.05 if i.hair_style != 1 else 0.75
    behind = np.clip((0.35 - z) / 0.1, 0, 1) * np.clip((side_lim - y) / 0.08 + 0.5, 0, 1)
    if i.hair_style == 1:
        curtain = np.clip((np.abs(x) - 0.86) / 0.04, 0, 1) * np.clip((side_lim - y) / 0.1, 0, 1)
        behind = np.maximum(behind, curtain)
    return np.maximum(m, behind)


def _hair_front(cv: Canvas, head: _Head) -> None:
    """A fringe lock over the forehead for long-haired and short-haired identities."""
    i = head.id
    if i.hair_style == 2:
        return
    p = i.hair_part
    xs = np.linspace(-0.9, 0.9, 19, dtype=np.float32)
    top = i.hairline - 0.05 + 0.22 * xs ** 2
    depth = 0.12 + 0.08 * (1 if i.hair_style == 1 else 0.4) * (1 - np.abs(xs - 0.4 * p))
    bottom = top + depth * np.clip(1 - 0.9 * np.abs(xs - 0.5 * p), 0.2, 1)
    pts = np.concatenate([head.project(xs, top, dz=0.02), head.project(xs[::-1], bottom[::-1], dz=0.02)])
    cv.fill(pts, i.hair * 0.9, blur=max(0.6, head.sc.scale * 0.01))


def _brows(cv: Canvas, head: _Head, k: Mapping[str, float]) -> None:
    i = head.id
    br, bi, bl = k.get("brow_raise", 0), k.get("brow_inner_up", 0), k.get("brow_lower", 0)
    for side in (-1, 1):
        inner = np.array([side * (i.eye_dx - i.eye_w * 0.95 - 0.05 * bl), i.brow_y + 0.02 - 0.13 * br - 0.16 * bi + 0.13 * bl])
        mid = np.array([side * (i.eye_dx + 0.02), i.brow_y - 0.07 - 0.14 * br - 0.03 * bi + 0.07 * bl])
        outer = np.array([side * (i.eye_dx + i.eye_w * 1.2), i.brow_y + 0.03 - 0.09 * br + 0.05 * bi + 0.01 * bl])
        xs, ys = _curve(inner, 2 * mid - 0.5 * (inner + outer), outer, 14)
        t = np.linspace(0, 1, 14)
        th = i.brow_thick * (1.25 - 0.75 * t)
        upper = head.project(xs, ys - th / 2)
        lower = head.project(xs[::-1], (ys + th / 2)[::-1])
        if not head.visible(float(xs[7]), float(ys[7])):
            continue
        cv.fill(np.concatenate([upper, lower]), i.hair * 0.7, alpha=0.92, blur=max(0.5, head.sc.scale * 0.006))


def _eyes(cv: Canvas, head: _Head, k: Mapping[str, float]) -> None:
    i, s = head.id, head.sc.scale
    up = 1 + 0.75 * k.get("eye_wide", 0) - 0.45 * k.get("eye_squint", 0) - 0.45 * k.get("lid_droop", 0)
    lo = 1 + 0.35 * k.get("eye_wide", 0) - 0.55 * k.get("cheek_raise", 0) - 0.35 * k.get("eye_squint", 0)
    t = np.linspace(-1, 1, 17, dtype=np.float32)
    for side in (-1, 1):
        ex, ey = side * i.eye_dx, i.eye_y
        if not head.visible(ex, ey):
            continue
        tilt = -0.015 * side * t  # outer corner slightly higher
        xs = ex + t * i.eye_w
        yu = ey - i.eye_h * up * (1 - t ** 2) ** 0.8 * (1 + 0.15 * side * t) + tilt
        yl = ey + i.eye_h * 0.6 * lo * (1 - t ** 2) ** 0.9 + tilt
        dz = 0.02
        upper, lower = head.project(xs, yu, dz), head.project(xs, yl, dz)
        opening = np.concatenate([upper, lower[::-1]])
        cv.fill(opening, np.array([0.86, 0.88, 0.9]) * 0.95, blur=0.4)
        clip = cv.mask_of(opening)
        r = i.eye_h * 1.05
        a = np.linspace(0, 2 * np.pi, 24, dtype=np.float32)
        gx = ex + head.sc.gaze * i.eye_w * 0.3
        iris = head.project(gx + r * np.cos(a), ey + 0.005 + r * np.sin(a), dz + 0.01)
        cv.fill(iris, i.iris, clip=clip, blur=0.4)
        pupil = head.project(gx + 0.45 * r * np.cos(a), ey + 0.005 + 0.45 * r * np.sin(a), dz + 0.01)
        cv.fill(pupil, np.array([0.03, 0.03, 0.03]), clip=clip)
        hl = head.project(gx + 0.3 * r + 0.12 * r * np.cos(a), ey - 0.3 * r + 0.12 * r * np.sin(a), dz + 0.02)
        cv.fill(hl, np.array([1.0, 1.0, 1.0]), alpha=0.8, clip=clip)
        lid = np.array([0.05, 0.05, 0.06])
        cv.stroke(upper, lid, thickness=max(1.0, 0.028 * s), alpha=0.95, blur=0.3)
        cv.stroke(lower, i.skin * 0.45, thickness=max(1.0, 0.01 * s), alpha=0.6, blur=0.3)
        crease = head.project(xs[2:-2], (yu - 0.045 - 0.02 * k.get("eye_wide", 0))[2:-2], dz)
        cv.stroke(crease, i.skin * 0.5, thickness=max(1.0, 0.012 * s), alpha=0.5, blur=0.5)
        if k.get("cheek_raise", 0) > 0.2:  # smile lines under the eye and crow's feet
            bag = head.project(xs[3:-3], (yl + 0.05)[3:-3], dz)
            cv.stroke(bag, i.skin * 0.5, thickness=max(1.0, 0.012 * s), alpha=0.5 * k["cheek_raise"], blur=0.5)


def _nose(cv: Canvas, head: _Head, k: Mapping[str, float]) -> None:
    i, s = head.id, head.sc.scale
    nw = k.get("nose_wrinkle", 0)
    ny = i.nose_y - 0.03 * nw
    wing = i.nose_w * (1 + 0.15 * nw)
    # bridge line on the shadow side, shows the nose's protrusion when the head is turned
    side = 1 if head.sc.light[0] < 0 else -1
    ys = np.linspace(i.eye_y + 0.05, ny - 0.06, 10, dtype=np.float32)
    dz = np.linspace(0.05, 0.3, 10, dtype=np.float32)
    bridge = head.project(side * (0.07 + 0.02 * (ys - ys[0])), ys, dz)
    cv.stroke(bridge, i.skin * 0.55, thickness=max(1.0, 0.02 * s), alpha=0.35 + 0.3 * abs(head.sy_), blur=max(0.5, 0.01 * s))
    tip_c = np.array([0.0, ny - 0.03])
    a = np.linspace(0, 2 * np.pi, 20, dtype=np.float32)
    tip = head.project(tip_c[0] + 0.08 * np.cos(a), tip_c[1] + 0.06 * np.sin(a), 0.28)
    cv.fill(tip, np.minimum(i.skin * 1.12, 1), alpha=0.35, blur=max(0.6, 0.02 * s))
    for sd in (-1, 1):
        nx = sd * wing * 0.45
        nos = head.project(nx + 0.055 * np.cos(a), ny + 0.045 + 0.026 * np.sin(a), 0.12)
        cv.fill(nos, i.skin * 0.25, alpha=0.9, blur=max(0.4, 0.006 * s))
        wx, wy = _curve((sd * wing * 0.75, ny - 0.1), (sd * wing * 1.2, ny), (sd * wing * 0.55, ny + 0.08), 10)
        cv.stroke(head.project(wx, wy, 0.1), i.skin * 0.45, thickness=max(1.0, 0.016 * s), alpha=0.6, blur=0.5)


def _mouth(cv: Canvas, head: _Head, k: Mapping[str, float]) -> None:
    i, s = head.id, head.sc.scale
    sm, smirk, cd = k.get("smile", 0), k.get("smirk", 0), k.get("corner_down", 0)
    ls, lp, ulr = k.get("lip_stretch", 0), k.get("lip_press", 0), k.get("upper_lip_raise", 0)
    jo, mr, teeth = k.get("jaw_open", 0), k.get("mouth_round", 0), k.get("teeth", 0)
    my = i.mouth_y
    half = i.mouth_w * (1 + 0.22 * sm + 0.28 * ls - 0.42 * mr - 0.1 * lp)
    cy = np.array([my, my], np.float32)  # corner heights (image-left, image-right)
    cx = np.array([-half, half], np.float32)
    cy += -0.19 * sm + 0.17 * cd + 0.03 * ls
    ss = 0 if i.smirk_side < 0 else 1
    cy[ss] -= 0.17 * smirk
    cx[ss] += i.smirk_side * 0.08 * smirk
    cy[1 - ss] += 0.03 * smirk
    cx[1 - ss] -= i.smirk_side * 0.05 * smirk
    t = np.linspace(-1, 1, 25, dtype=np.float32)
    u = (t + 1) / 2
    xs = cx[0] + (cx[1] - cx[0]) * u
    base = cy[0] + (cy[1] - cy[0]) * u
    bend = (my + 0.02 * jo - 0.03 * cd) - (cy.mean())  # centre relative to the corners' chord
    yc = base + bend * (1 - t ** 2)
    gap = 0.5 * 0.55 * jo * (1 - t ** 2) ** (0.6 if mr < 0.5 else 0.45)
    lift = 0.08 * ulr * np.clip(1 - np.abs(t) ** 3, 0, 1)
    in_top = yc - 0.35 * gap - lift
    in_bot = yc + 0.65 * gap
    fullness = i.lip_th * (1 - 0.75 * lp) * (1 - 0.3 * ls)
    env = np.clip(1 - t ** 2, 0, 1) ** 0.6
    cupid = 0.02 * np.exp(-(t / 0.12) ** 2) * (1 - lp)
    out_top = in_top - fullness * 0.5 * env - 0.006 + cupid * 0
    out_top = out_top + cupid
    out_bot = in_bot + fullness * 0.65 * env + 0.004
    lips_col = i.lips * (1 - 0.25 * lp)
    dz = 0.05
    lips = np.concatenate([head.project(xs, out_top, dz), head.project(xs[::-1], out_bot[::-1], dz)])
    cv.fill(lips, lips_col, alpha=0.9, blur=max(0.5, 0.008 * s))
    # highlight on the lower lip
    hl = np.concatenate([head.project(xs[8:17], (in_bot + fullness * 0.2 * env)[8:17], dz),
                         head.project(xs[16:7:-1], (in_bot + fullness * 0.45 * env)[16:7:-1], dz)])
    cv.fill(hl, np.minimum(lips_col * 1.3, 1), alpha=0.35, blur=max(0.6, 0.01 * s))
    open_amt = float((in_bot - in_top).max())
    if open_amt > 0.02:
        inner = np.concatenate([head.project(xs, in_top, dz), head.project(xs[::-1], in_bot[::-1], dz)])
        cv.fill(inner, np.array([0.08, 0.06, 0.12]), blur=0.4)
        clip = cv.mask_of(inner)
        if teeth > 0.05:
            th = 0.07 + 0.03 * ulr
            tt = np.abs(t) < 0.85
            upper = np.concatenate([head.project(xs[tt], in_top[tt] - 0.02, dz),
                                    head.project(xs[tt][::-1], np.minimum(in_top + th, in_bot)[tt][::-1], dz)])
            cv.fill(upper, np.array([0.88, 0.9, 0.92]), alpha=min(1.0, 0.4 + teeth), clip=clip, blur=0.4)
            if jo > 0.3 and (ls > 0.3 or sm > 0.5):
                lower = np.concatenate([head.project(xs[tt], np.maximum(in_bot - 0.05, in_top)[tt], dz),
                                        head.project(xs[tt][::-1], in_bot[tt][::-1] + 0.02, dz)])
                cv.fill(lower, np.array([0.8, 0.82, 0.85]), alpha=0.8 * teeth, clip=clip, blur=0.4)
    # the line between the lips, and the corners
    line = head.project(xs, (in_top + in_bot) / 2, dz)
    cv.stroke(line, np.array([0.06, 0.05, 0.08]), thickness=max(1.0, 0.026 * s), alpha=0.9, blur=0.4)
    # nasolabial folds: deeper when smiling or sneering; on one side for a smirk
    for idx, sd in enumerate((-1, 1)):
        depth = 0.15 + 0.45 * max(sm, ulr, 0.7 * ls) + (0.5 * smirk if idx == ss else 0)
        p0 = (sd * (i.nose_w + 0.06), i.nose_y - 0.03)
        p2 = (cx[idx] + sd * 0.06, cy[idx] + 0.06)
        p1 = (sd * (i.nose_w + 0.16 + 0.05 * sm), (p0[1] + p2[1]) / 2)
        fx, fy = _curve(p0, p1, p2, 10)
        if head.visible(float(fx[5]), float(fy[5])):
            cv.stroke(head.project(fx, fy), i.skin * 0.45, thickness=max(1.0, 0.018 * s), alpha=min(0.9, depth),
                      blur=max(0.6, 0.01 * s))
    if smirk > 0.2:  # dimple at the lifted corner
        dx, dy = cx[ss] + i.smirk_side * 0.05, cy[ss] - 0.01
        a = np.linspace(-0.9, 0.9, 8)
        pts = head.project(dx + i.smirk_side * 0.03 * np.cos(a), dy + 0.05 * np.sin(a))
        cv.stroke(pts, i.skin * 0.4, thickness=max(1.0, 0.018 * s), alpha=0.7 * smirk, blur=0.5)


def _wrinkles(cv: Canvas, head: _Head, k: Mapping[str, float]) -> None:
    i, s = head.id, head.sc.scale
    br = max(k.get("brow_raise", 0), 0.7 * k.get("brow_inner_up", 0))
    col = i.skin * 0.5
    th = max(1.0, 0.014 * s)
    if br > 0.2:  # forehead lines
        for j, dy in enumerate((0.16, 0.26, 0.36)):
            xs = np.linspace(-0.45 + 0.05 * j, 0.45 - 0.05 * j, 12, dtype=np.float32)
            ys = i.brow_y - dy - 0.1 * br + 0.05 * (xs / 0.45) ** 2
            cv.stroke(head.project(xs, ys), col, th, alpha=0.45 * br, blur=0.6)
    bl = k.get("brow_lower", 0)
    if bl > 0.2:  # vertical frown lines between the brows
        for sd in (-1, 1):
            xs = np.array([sd * 0.06, sd * 0.075], np.float32)
            ys = np.array([i.brow_y - 0.06, i.brow_y + 0.12], np.float32)
            cv.stroke(head.project(xs, ys), col, th, alpha=0.6 * bl, blur=0.6)
    nw = k.get("nose_wrinkle", 0)
    if nw > 0.2:  # across the nose bridge
        for dy in (0.0, 0.06, 0.12):
            xs = np.linspace(-0.11, 0.11, 7, dtype=np.float32)
            ys = i.eye_y + 0.08 + dy + 0.03 * (xs / 0.11) ** 2
            cv.stroke(head.project(xs, ys, 0.15), col, th, alpha=0.6 * nw, blur=0.5)


def _glasses(cv: Canvas, head: _Head, k: Mapping[str, float]) -> None:
    i, s = head.id, head.sc.scale
    a = np.linspace(0, 2 * np.pi, 28, dtype=np.float32)
    col = np.array([0.08, 0.08, 0.1])
    for side in (-1, 1):
        ex, ey = side * i.eye_dx, i.eye_y + 0.01
        if not head.visible(ex, ey):
            continue
        rim = head.project(ex + 0.26 * np.sign(np.cos(a)) * np.abs(np.cos(a)) ** 0.7,
                           ey + 0.15 * np.sign(np.sin(a)) * np.abs(np.sin(a)) ** 0.7, 0.1)
        cv.stroke(rim, col, max(1.0, 0.022 * s), alpha=0.9, closed=True, blur=0.4)
    bx = np.array([-i.eye_dx + 0.26, 0.0, i.eye_dx - 0.26], np.float32)
    cv.stroke(head.project(bx, np.array([ey - 0.03, ey - 0.06, ey - 0.03], np.float32), 0.14),
              col, max(1.0, 0.02 * s), alpha=0.9, blur=0.4)
