"""``stats.json`` and the dataset card ``README.md`` of a processed (sharded) dataset.

The card has Hugging Face YAML front matter (``configs`` naming each split's files and
``dataset_info`` with the features and split sizes), then the counts per split x class, the fold
sizes of a k-fold dataset, the parameters used and the SHA-256 of the input ``crops.parquet``.
Every input image is accounted for: ``input_rows == kept + dropped_by_balance`` is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipeline.core.atomic import write_text
from pipeline.core.labels import LABEL_NAMES
from pipeline.shards.format import COLUMNS, SPLITS


def _per_class(labels: pd.Series) -> dict[str, int]:
    counts = labels.value_counts()
    return {LABEL_NAMES[i]: int(counts[i]) for i in sorted(counts.index)}


def statistics(name: str, plan_rows: pd.DataFrame, written: pd.DataFrame, files: dict[str, list[str]],
               params: dict[str, Any], input_sha256: str) -> dict[str, Any]:
    """Counts of the written rows, the accounting of the input rows, the parameters and input hash.

    Args:
        name: the dataset.
        plan_rows: the plan (one row per input image, with ``split``, ``fold``, ``uses``).
        written: one row per written shard row: ``split``, ``label``, ``fold``, ``derived``.
        files: shard file names per split.
        params: the merged parameters of the four sections.
        input_sha256: SHA-256 of ``crops.parquet``.
    """
    dropped = plan_rows[plan_rows["uses"] == 0]
    kept = int((~written["derived"]).sum()) if len(written) else 0
    if kept + len(dropped) != len(plan_rows):
        raise AssertionError(f"{name}: {len(plan_rows)} input rows but {kept} kept + {len(dropped)} dropped")
    out: dict[str, Any] = {
        "dataset": name,
        "input": {"file": "crops.parquet", "sha256": input_sha256, "rows": int(len(plan_rows))},
        "accounting": {"input_rows": int(len(plan_rows)), "kept": kept, "dropped_by_balance": int(len(dropped)),
                       "dropped_per_class": _per_class(dropped["label"])},
        "classes": [LABEL_NAMES[i] for i in sorted(plan_rows["label"].unique())],
        "splits": {},
    }
    for split in SPLITS:
        part = written[written["split"] == split]
        if part.empty:
            continue
        orig, derived = part[~part["derived"]], part[part["derived"]]
        out["splits"][split] = {
            "rows": int(len(part)), "originals": int(len(orig)), "derived": int(len(derived)),
            "files": files.get(split, []),
            "originals_per_class": _per_class(orig["label"]),
            "derived_per_class": _per_class(derived["label"]),
        }
    folded = written[written["fold"] >= 0]
    if len(folded):
        out["folds"] = {
            str(f): {"originals": int((~g["derived"]).sum()), "derived": int(g["derived"].sum()),
                     "originals_per_class": _per_class(g.loc[~g["derived"], "label"])}
            for f, g in folded.groupby("fold")}
    out["params"] = params
    return out


def _front_matter(stats: dict[str, Any]) -> dict[str, Any]:
    dtypes = {"image": "image", "label": {"class_label": {"names": {str(i): n for i, n in enumerate(LABEL_NAMES)}}}}
    features = [{"name": c, "dtype": dtypes.get(c, feature.get("dtype"))} for c, (_, feature) in COLUMNS.items()]
    splits = stats["splits"]
    return {
        "pretty_name": f"{stats['dataset']} (fer-pipeline processed)",
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"{s}-*.parquet"} for s in splits]}],
        "dataset_info": {"features": features,
                         "splits": [{"name": s, "num_examples": v["rows"]} for s, v in splits.items()]},
    }


def card(stats: dict[str, Any]) -> str:
    """The ``README.md`` text of a processed dataset."""
    classes = stats["classes"]
    lines = ["---", yaml.safe_dump(_front_matter(stats), sort_keys=False).rstrip(), "---", "",
             f"# {stats['dataset']}: processed shards", "",
             "Written by `fer-pipeline shard`. Rows with a `parent_id` are derived (balancing copies or "
             "offline augmentations) and belong to training only; evaluation uses originals only.", "",
             f"Input: `crops.parquet`, {stats['input']['rows']} rows, SHA-256 `{stats['input']['sha256']}`. "
             f"Kept {stats['accounting']['kept']}, dropped by balancing {stats['accounting']['dropped_by_balance']}.", "",
             "## Rows per split and class (originals + derived)", "",
             "| split | " + " | ".join(classes) + " | total |", "|---" * (len(classes) + 2) + "|"]
    for split, v in stats["splits"].items():
        cells = [f"{v['originals_per_class'].get(c, 0)} + {v['derived_per_class'].get(c, 0)}" for c in classes]
        lines.append(f"| {split} | " + " | ".join(cells) + f" | {v['originals']} + {v['derived']} |")
    if "folds" in stats:
        lines += ["", "## Folds (originals; a fold's test part)", "", "| fold | " + " | ".join(classes) + " | total |",
                  "|---" * (len(classes) + 2) + "|"]
        for f, v in stats["folds"].items():
            lines.append(f"| {f} | " + " | ".join(str(v["originals_per_class"].get(c, 0)) for c in classes)
                         + f" | {v['originals']} |")
    lines += ["", "## Parameters", "", "```yaml", yaml.safe_dump(stats["params"], sort_keys=True).rstrip(), "```", ""]
    return "\n".join(lines)


def write(out_dir: str | Path, stats: dict[str, Any]) -> None:
    """Write ``stats.json`` and ``README.md`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    write_text(out_dir / "stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")
    write_text(out_dir / "README.md", card(stats))
