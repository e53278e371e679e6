"""Facial expressions as action-unit-like knobs, and the recipe of each unified class.

A rendered face is deformed by a handful of continuous knobs (loosely after FACS action units):
brow raise (AU1+2), inner-brow raise (AU1), brow lowering (AU4), upper-lid raise (AU5), squint /
lid tightening (AU7), cheek raise (AU6), lip-corner pull (AU12, both sides or one side for
contempt, AU14), lip-corner depression (AU15), upper-lip raise and nose wrinkle (AU9/AU10), lip
stretch (AU20), lip press (AU24), jaw drop (AU26/27), lip rounding and teeth showing. Each class
of :data:`pipeline.core.labels.LABEL_NAMES` is a recipe of peak knob values; :func:`expression_knobs`
scales a recipe by an intensity (0 = the identity's neutral face, 1 = peak) and by the identity's
own expressiveness, so that the same class looks a little different on every subject.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from pipeline.core.labels import LABEL_NAMES

#: Every knob the renderer understands (values roughly in 0..1).
KNOBS: tuple[str, ...] = (
    "brow_raise",       # both brows up (surprise, fear)
    "brow_inner_up",    # inner ends up, sad slant (sadness, fear)
    "brow_lower",       # brows down and together, frown lines (anger, disgust)
    "eye_wide",         # upper lid raised, white above the iris (surprise, fear)
    "eye_squint",       # lids tightened (anger, disgust)
    "cheek_raise",      # lower lid pushed up by the cheeks (happiness)
    "lid_droop",        # upper lid lowered (sadness)
    "smile",            # both lip corners up and out (happiness)
    "smirk",            # one lip corner up and back, dimple (contempt)
    "corner_down",      # lip corners down, chin raised (sadness)
    "lip_stretch",      # lips stretched sideways (fear)
    "lip_press",        # lips pressed thin (anger)
    "upper_lip_raise",  # upper lip raised, upper teeth visible (disgust)
    "nose_wrinkle",     # wrinkles across the nose bridge (disgust)
    "jaw_open",         # jaw drop (surprise, fear, happiness)
    "mouth_round",      # rounded "O" mouth (surprise)
    "teeth",            # how much the teeth show inside an open mouth
)

#: Peak knob values of each unified class; knobs not listed stay 0.
RECIPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "anger": {"brow_lower": 1.0, "eye_squint": 0.55, "lip_press": 1.0, "corner_down": 0.25},
    "contempt": {"smirk": 1.0, "eye_squint": 0.15},
    "disgust": {"nose_wrinkle": 1.0, "upper_lip_raise": 1.0, "brow_lower": 0.45, "eye_squint": 0.6,
                "corner_down": 0.35, "teeth": 0.8},
    "fear": {"brow_raise": 0.75, "brow_inner_up": 0.8, "eye_wide": 1.0, "lip_stretch": 1.0,
             "jaw_open": 0.45, "teeth": 0.9},
    "happiness": {"smile": 1.0, "cheek_raise": 0.8, "jaw_open": 0.3, "teeth": 1.0},
    "sadness": {"brow_inner_up": 1.0, "lid_droop": 0.6, "corner_down": 1.0, "lip_press": 0.3},
    "surprise": {"brow_raise": 1.0, "eye_wide": 1.0, "jaw_open": 1.0, "mouth_round": 1.0, "teeth": 0.3},
}
assert set(RECIPES) == set(LABEL_NAMES), "every unified class needs a recipe"
assert all(k in KNOBS for r in RECIPES.values() for k in r), "unknown knob in a recipe"


def expression_knobs(label_name: str, intensity: float = 1.0,
                     style: Mapping[str, float] | None = None) -> dict[str, float]:
    """Knob values of class ``label_name`` at ``intensity`` (0 neutral .. 1 peak).

    Args:
        label_name: a unified class name (:data:`pipeline.core.labels.LABEL_NAMES`).
        intensity: fraction of the peak expression; CK+ sequences ramp it from 0 to 1.
        style: per-identity multipliers of the knobs (missing knobs count as 1), so that
            subjects express the same emotion with somewhat different strength.

    Returns:
        A dict with every knob of :data:`KNOBS`.
    """
    if label_name not in RECIPES:
        raise KeyError(f"unknown expression {label_name!r}; known: {', '.join(LABEL_NAMES)}")
    style = style or {}
    knobs = dict.fromkeys(KNOBS, 0.0)
    for knob, peak in RECIPES[label_name].items():
        knobs[knob] = float(np.clip(peak * intensity * style.get(knob, 1.0), 0.0, 1.3))
    return knobs


def sample_style(rng: np.random.Generator) -> dict[str, float]:
    """Per-identity expressiveness: one multiplier in [0.8, 1.15] per knob."""
    return {k: float(v) for k, v in zip(KNOBS, rng.uniform(0.8, 1.15, len(KNOBS)))}


def smoothstep(t: np.ndarray | float) -> np.ndarray | float:
    """Ease-in/ease-out ramp 0..1 used for the onset of an expression over a sequence."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
