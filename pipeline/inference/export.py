"""The work of ``fer-pipeline export``: one file that holds a checkpoint's network and its spec.

- ``onnx``: :func:`pipeline.evaluation.onnx_export.export_onnx` (the exporter ``evaluate`` uses)
  with the :class:`~pipeline.inference.spec.ModelSpec` as metadata properties: ``fer_pipeline``
  (the whole spec, JSON), ``class_names``, ``mean``, ``std``, ``input_size`` (``[C, H, W]``);
- ``torchscript``: the traced network, the spec as the archive's ``fer_pipeline.json``.

The file is then opened as ``predict --model`` opens it and checked against the checkpoint on
a seeded random batch: :attr:`Exported.max_prob_diff` is the largest probability difference.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.inference.spec import ModelError, ModelSpec, find_params, spec_from_checkpoint

FORMATS = ("onnx", "torchscript")
SUFFIX_FORMAT = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript"}


@dataclass(frozen=True)
class Exported:
    path: Path
    format: str
    spec: ModelSpec
    max_prob_diff: float


def format_of(out: str | os.PathLike, fmt: str | None) -> str:
    """``fmt``, or the format the file name says (``.onnx``; ``.pt``/``.ts`` for TorchScript)."""
    if fmt:
        if fmt not in FORMATS:
            raise ModelError(f"--format {fmt}: use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(out).suffix.lower()
    if suffix not in SUFFIX_FORMAT:
        raise ModelError(f"{out}: give --format ({', '.join(FORMATS)}) or name the file .onnx / .pt")
    return SUFFIX_FORMAT[suffix]


def export_torchscript(network, input_shape, path: str | os.PathLike, spec_json: str) -> Path:
    """Trace ``network`` at ``input_shape`` and save it with the spec, atomically."""
    import torch

    from pipeline.core.atomic import atomic_path
    from pipeline.inference.backends import TORCHSCRIPT_SPEC

    network = network.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice: still what users load without the zoo
        traced = torch.jit.trace(network, torch.zeros(*input_shape))
        with atomic_path(path) as tmp:
            torch.jit.save(traced, str(tmp), _extra_files={TORCHSCRIPT_SPEC: spec_json})
    return Path(path)


def export_model(checkpoint: str | os.PathLike, out: str | os.PathLike, fmt: str | None = None,
                 params: str | os.PathLike | None = None, check_batch: int = 4) -> Exported:
    """Export ``checkpoint`` to ``out`` in ``fmt`` (see the module doc) and check it."""
    import torch

    from pipeline.evaluation.onnx_export import export_onnx
    from pipeline.inference.backends import TorchBackend, load_checkpoint_model, open_model, softmax

    fmt = format_of(out, fmt)
    network, ckpt = load_checkpoint_model(checkpoint, "cpu")
    spec = spec_from_checkpoint(ckpt, checkpoint, params)
    shape = (1, *spec.input_shape)
    if fmt == "onnx":
        export_onnx(network, shape, out, metadata=spec.metadata())
    else:
        export_torchscript(network, shape, out, spec.to_json())
    exported_spec, backend = open_model(model=out, device="cpu")
    x = np.random.default_rng(0).standard_normal((check_batch, *spec.input_shape)).astype(np.float32)
    ref = TorchBackend(network, torch.device("cpu"))(x)
    diff = float(np.abs(softmax(backend(x)) - softmax(ref)).max())
    return Exported(Path(out), fmt, exported_spec, diff)


def publish_checkpoint(checkpoint: str | os.PathLike, name: str, *, lock: str | os.PathLike | None = None,
                       params: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                       shards: str | os.PathLike | None = None, command: str | None = None) -> Path:
    """Ship ``checkpoint``'s network inside ``fer_models`` as ``<name>.pt`` + ``<name>.json``
    (:func:`fer_models.pretrained.publish`), so ``create_model(name, pretrained=True)`` and
    ``predict`` without ``--checkpoint`` find it. The card holds the classes, mean/std and input
    size (timm's ``default_cfgs`` keys), the whole predict spec, and the provenance: the profile, the
    checkpoint's sha256, its validation accuracy (FER2013: PublicTest) and rounds, the DVC hashes
    (``dvc.lock``'s md5, computed by DVC's hashing) of the checkpoint and of the shards it was trained
    on (``shards``, default ``data/processed/<dataset>``), with ``lock`` the hashes that lock records,
    and ``command``, the line that remakes it."""
    import yaml

    from fer_models.pretrained import publish
    from pipeline.core.digest import dvc_md5, file_sha256
    from pipeline.core.params import load
    from pipeline.inference.backends import load_checkpoint_model

    network, ckpt = load_checkpoint_model(checkpoint, "cpu")
    spec = spec_from_checkpoint(ckpt, checkpoint, params)
    found, _ = find_params(params, checkpoint)
    provenance: dict = {"checkpoint": str(checkpoint),
                        "checkpoint_sha256": file_sha256(checkpoint),
                        "profile": (load(found) or {}).get("profile") if found else None,
                        "dataset": ckpt.get("dataset"), "params_hash": ckpt.get("params_hash"),
                        "validation_accuracy": ckpt.get("val_acc"),
                        "rounds": len(ckpt["rounds"]) - 1 if "rounds" in ckpt else None,
                        "best_round": ckpt.get("best_round")}  # 0: the rounds never beat the teacher
    shards = Path(shards) if shards is not None else Path("data/processed") / str(ckpt.get("dataset"))
    if not shards.is_dir():
        raise FileNotFoundError(f"{shards}: no shards folder to record in the provenance (--shards DIR)")
    provenance["dvc"] = {"checkpoint": dvc_md5(checkpoint), "shards": {"path": str(shards), **dvc_md5(shards)}}
    if command:
        provenance["command"] = command
    if lock is not None:
        wanted = (f"data/processed/{ckpt.get('dataset')}", str(Path(checkpoint).parent))
        hashes = {}
        for stage in (yaml.safe_load(Path(lock).read_text()) or {}).get("stages", {}).values():
            for entry in stage.get("outs", []):
                if any(entry["path"] == w or str(Path(checkpoint)).startswith(entry["path"] + "/") for w in wanted):
                    hashes[entry["path"]] = entry.get("md5")
        provenance["dvc_lock"] = hashes
    card = {"classes": list(spec.class_names), "mean": spec.input["mean"], "std": spec.input["std"],
            "arch": str(ckpt["model"]), "model_args": dict(ckpt.get("model_args") or {}),
            "input_size": list(spec.input_shape), "spec": json.loads(spec.to_json()), "provenance": provenance}
    return publish(name, network, card, out)
