"""What a trained model needs around its network: classes, input, alignment and detection settings.

A :class:`ModelSpec` is built from a checkpoint (:func:`spec_from_checkpoint`) or read back from
the metadata of an exported file (:meth:`ModelSpec.from_json`), so ``predict`` runs the same way
on either and from any directory:

- ``class_names`` and ``input`` (``px``, ``resize``, ``channels``, ``mean``, ``std``,
  ``equalize``) come from the checkpoint itself;
- ``align``, the warp of the crops the model was trained on (``px``, ``colour``, ``margin``,
  ``interpolation``, ``border``, ``min_input_side``): the checkpoint's ``align`` entry when it has
  one, else ``align.<its dataset>`` of the params file (``--params``, ``$FER_PARAMS``, else the
  ``params.yaml`` of the project holding the checkpoint, else that of the current directory: a
  folder with ``params.yaml`` and ``dvc.yaml``), else the built-in defaults (the schema's);
- ``detection``: MTCNN settings for ``photos`` and ``video`` frames, from ``align.photos`` and
  ``align.video`` of the same params file, else :data:`DEFAULT_DETECTION` (the committed values,
  kept equal to ``params.yaml`` by a test).

An exported file carries the spec as it was resolved at export time; ``--params`` given
explicitly still overrides its detection settings (a deployment choice, not the model's).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

#: the warp settings that shape a crop (the keys of ``align.<dataset>`` a model depends on)
WARP_KEYS = ("px", "colour", "margin", "interpolation", "border", "min_input_side")
#: detection settings per kind of input, used when no params file is found (= params.yaml's
#: ``align.photos`` and ``align.video`` merged with ``align.defaults``)
DEFAULT_DETECTION: dict[str, dict[str, Any]] = {
    "photos": {"max_side": 1280, "min_side": 0, "pad": 0.0, "min_face_size": 20, "factor": 0.709,
               "thresholds": [0.6, 0.7, 0.9], "batch_size": 16},
    "video": {"max_side": 320, "min_side": 0, "pad": 0.0, "min_face_size": 40, "factor": 0.709,
              "thresholds": [0.6, 0.7, 0.9], "batch_size": 16},
}
KINDS = tuple(DEFAULT_DETECTION)
SPEC_VERSION = 1
#: the metadata key of an exported file that holds the whole spec as JSON
METADATA_KEY = "fer_pipeline"


class ModelError(ValueError):
    """A model file or checkpoint that cannot be used: one line naming the file and the problem."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything around the network: see the module doc. ``source`` says where ``align`` and
    ``detection`` came from (printed by ``predict``); it is not part of an exported file."""

    class_names: tuple[str, ...]
    input: dict[str, Any]
    align: dict[str, Any]
    detection: dict[str, dict[str, Any]]
    arch: str = ""
    dataset: str | None = None
    source: str = field(default="", compare=False)

    @property
    def channels(self) -> int:
        return int(self.input["channels"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one network input."""
        return (self.channels, int(self.input["px"]), int(self.input["px"]))

    def align_settings(self, kind: str = "photos", device: str = "cpu"):
        """:class:`~pipeline.align.settings.AlignSettings` warping like the training crops, with
        the detection settings of ``kind`` (``photos`` or ``video``), MTCNN on ``device``."""
        from pipeline.align.settings import AlignSettings

        if kind not in self.detection:
            raise ValueError(f"no detection settings for {kind!r} (known: {', '.join(self.detection)})")
        return AlignSettings.from_dict({**self.align, "policy": "detect", "fallback": [], "device": str(device),
                                        "detection": dict(self.detection[kind])}, f"model alignment ({kind})")

    def with_detection(self, detection: dict[str, dict[str, Any]], source: str) -> "ModelSpec":
        return replace(self, detection={**self.detection, **detection}, source=source)

    def to_json(self) -> str:
        d = {"version": SPEC_VERSION, "class_names": list(self.class_names), "input": self.input,
             "align": self.align, "detection": self.detection, "arch": self.arch, "dataset": self.dataset}
        return json.dumps(d, sort_keys=True)

    def metadata(self) -> dict[str, str]:
        """String properties of an exported file: the whole spec, and the items a reader without
        fer-pipeline looks for (class names, mean/std, input size ``[C, H, W]``)."""
        return {METADATA_KEY: self.to_json(), "class_names": json.dumps(list(self.class_names)),
                "mean": json.dumps(self.input["mean"]), "std": json.dumps(self.input["std"]),
                "input_size": json.dumps(list(self.input_shape))}

    @classmethod
    def from_json(cls, text: str | None, where: str) -> "ModelSpec":
        """The spec stored by :meth:`to_json`; :class:`ModelError` naming ``where`` when absent or broken."""
        if not text:
            raise ModelError(f"{where}: no fer-pipeline metadata (class names, input, alignment); "
                             f"export the checkpoint with `fer-pipeline export`")
        try:
            d = json.loads(text)
            spec = cls(class_names=tuple(d["class_names"]), input=d["input"], align=d["align"],
                       detection=d["detection"], arch=d.get("arch", ""), dataset=d.get("dataset"),
                       source=f"{where} (metadata)")
            spec.align_settings("photos")  # validates the settings it carries
            if len(spec.class_names) < 1 or spec.channels not in (1, 3):
                raise ValueError("no classes or channels not 1/3")
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{where}: broken fer-pipeline metadata ({' '.join(str(exc).split())})") from None
        return spec


def input_spec(recipe_input: dict[str, Any], channels: int) -> dict[str, Any]:
    """A recipe's ``input`` with every value explicit (what :func:`eval_transform` reads)."""
    from pipeline.training.transforms import input_px

    px = input_px(recipe_input)
    return {"px": px, "resize": int(recipe_input.get("resize", px)), "channels": int(channels),
            "mean": [float(v) for v in recipe_input.get("mean", [0.5] * channels)],
            "std": [float(v) for v in recipe_input.get("std", [0.5] * channels)],
            "equalize": bool(recipe_input.get("equalize", False))}


def _project_params(folder: Path) -> Path | None:
    """``folder/params.yaml`` when ``folder`` is a fer-pipeline project (``dvc.yaml`` beside it),
    so that an unrelated ``params.yaml`` above a copied checkpoint is not taken for ours."""
    found = folder / "params.yaml"
    return found if found.is_file() and (folder / "dvc.yaml").is_file() else None


def find_params(explicit: str | os.PathLike | None, near: str | os.PathLike | None) -> tuple[Path | None, bool]:
    """The params file to read and whether the user named it: ``explicit`` (or ``$FER_PARAMS``),
    else the ``params.yaml`` of the project above ``near`` (the folder holding a checkpoint and
    its parents), else that of the current directory; ``None`` when there is none."""
    from pipeline.core.params import PARAMS_ENV

    named = explicit or os.environ.get(PARAMS_ENV)
    if named:
        if not Path(named).is_file():
            raise FileNotFoundError(f"{named}: params file not found")
        return Path(named), True
    folders = list(Path(near).resolve().parents) if near is not None else []
    for folder in [*folders, Path(".")]:
        found = _project_params(folder)
        if found is not None:
            return found, False
    return None, False


def detection_from_params(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``align.photos`` / ``align.video`` detection of a params mapping (built-in where absent)."""
    from pipeline.align.settings import DetectionSettings
    from pipeline.core.params import section

    out = {}
    for kind in KINDS:
        entry = (params.get("align") or {}).get(kind)
        if entry is None or "detection" not in entry:
            out[kind] = dict(DEFAULT_DETECTION[kind])
            continue
        d = section("align", kind, params=params)["detection"]
        DetectionSettings.from_dict(dict(d), f"align.{kind}.detection")
        out[kind] = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in d.items()}
    return out


def warp_defaults() -> dict[str, Any]:
    """The built-in warp: :class:`~pipeline.align.settings.AlignSettings`' defaults (= the schema's)."""
    from pipeline.align.settings import AlignSettings

    d = AlignSettings().to_dict()
    return {k: d[k] for k in WARP_KEYS}


def spec_from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike,
                         params_path: str | os.PathLike | None = None) -> ModelSpec:
    """The spec of a loaded checkpoint dict (see the module doc for where each part comes from)."""
    from pipeline.core.params import load, section

    dataset = ckpt.get("dataset")
    found, _ = find_params(params_path, path)
    params = load(found) if found else None
    if ckpt.get("align"):
        align, align_from = {k: ckpt["align"][k] for k in WARP_KEYS if k in ckpt["align"]}, "the checkpoint"
        align = {**warp_defaults(), **align}
    elif params is not None and dataset and (params.get("align") or {}).get("defaults") is not None:
        merged = section("align", dataset, params=params)
        align, align_from = {k: merged[k] for k in WARP_KEYS if k in merged}, f"align.{dataset} of {found}"
        align = {**warp_defaults(), **align}
    else:
        align, align_from = warp_defaults(), "built-in defaults" + ("" if found else " (no params.yaml found)")
    if params is not None:
        detection = detection_from_params(params)
    else:
        detection = {k: dict(v) for k, v in DEFAULT_DETECTION.items()}
    det_from = f"align.photos/video of {found}" if params is not None else "built-in detection settings"
    spec = ModelSpec(class_names=tuple(ckpt["label_names"]),
                     input=input_spec(ckpt["recipe"]["input"], int(ckpt["in_chans"])),
                     align=align, detection=detection, arch=str(ckpt["model"]), dataset=dataset,
                     source=f"warp: {align_from}; detection: {det_from}")
    spec.align_settings("photos")
    return spec


def override_detection(spec: ModelSpec, params_path: str | os.PathLike | None) -> ModelSpec:
    """An exported model's spec with the detection settings of a params file the user named."""
    from pipeline.core.params import load

    found, named = find_params(params_path, None)
    if not named:
        return spec
    return spec.with_detection(detection_from_params(load(found)), f"{spec.source}; detection: {found}")
