"""Tiny shards and a tiny params file for the training, distillation, evaluation and report tests.

Shards come from the real shard builder (``pipeline.shard.build``) over drawn faces whose mouth
curve depends on the label (``crops_fixture``), so a small EAN learns them in a few epochs.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from crops_fixture import make_crops

from pipeline.shard.build import Settings, build

RECIPE: dict[str, Any] = {
    "seed": 0, "deterministic": True, "num_workers": 0, "epochs": 2, "batch_size": 8,
    "input": {"px": 20, "resize": 24, "channels": 1, "mean": [0.5], "std": [0.5]},
    "augment": {"crop": "five", "flip": 0.5},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "scheduler": {"name": "plateau", "factor": 0.9, "patience": 1},
    "loss": {"name": "model"}, "model_args": {},
}


def tiny_shards(base: Path, dataset: str = "ckplus", protocol: str = "ratio", labels=(1, 5, 7),
                subjects: int = 12, per_subject: int = 2) -> Path:
    """Shards of a small drawn-face dataset under ``base/processed/<dataset>``; returns that root's parent."""
    crops = make_crops(base / "aligned" / dataset, dataset, subjects=subjects, per_subject=per_subject,
                       labels=tuple(labels), size=32)
    split = ({"protocol": "kfold", "k": 4, "seed": 0} if protocol == "kfold" else
             {"protocol": "ratio", "seed": 0, "ratios": {"train": 0.5, "validation": 0.25, "test": 0.25}})
    build(dataset, crops, base / "processed" / dataset,
          Settings(split=split, balance={"method": "none"}, augment={"preset": "none", "factor": 1},
                   shard={"shard_mb": 1, "row_group_kb": 64, "chunk_rows": 64}))
    return base / "processed"


def write_params(path: Path, **recipes: dict[str, Any]) -> Path:
    """A params file whose ``train`` section holds RECIPE as defaults and the given recipes."""
    params = {
        "profile": "test",
        "device": "cpu",  # the stages' device: tests repeat bit for bit on any machine
        "train": {"defaults": copy.deepcopy(RECIPE), **recipes},
        "distill": {"defaults": {"teacher": "ean", "alpha": 0.5, "temperature": 5, "max_rounds": 2,
                                 "patience": 1, "weight_transfer": True, "epochs": 1,
                                 "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}}},
        "evaluate": {"batch_size": 16, "ten_crop": True, "latency": {"runs": 5, "threads": 1},
                     "onnx_tolerance": 1e-3},
        "align": {"defaults": {"px": 32, "colour": "grey", "margin": 0.25}},
        "report": {"eval_dir": "eval"},
    }
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path
