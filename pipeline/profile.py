"""``fer-pipeline profile NAME``: switch ``params.yaml`` to a named profile (demo, paper, ckplus48).

DVC reads one ``params.yaml``, and every stage reads its knobs there, so a profile is *applied to*
that file rather than read beside it:

* ``demo`` is the base: the committed ``params.yaml`` (everyone edits their sections there). It runs
  on the generated sample on 2 cores in minutes.
* every other profile is an overlay ``profiles/<name>.yaml`` holding only the keys that differ
  (deep-merged; lists replaced; a mapping holding ``_replace: true`` replaces the base's mapping
  instead, e.g. to train fewer pairs of ``train.matrix``). An overlay may only set keys the base
  has, or add a per-dataset / per-model entry to a section with ``defaults`` — so a typo fails
  loudly instead of being ignored.
* switching away from demo first snapshots the base into ``profiles/demo.yaml``; switching back
  restores it from there and removes the snapshot (with demo active, params.yaml is the base). ``params.yaml`` keeps the base's comments (ruamel round-trip) and records
  ``profile: <name>``. Commit ``params.yaml`` (and ``profiles/demo.yaml``) with ``dvc.lock``: the
  next ``dvc repro`` re-runs exactly the stages whose params changed.
* the command refuses to overwrite a ``params.yaml`` that was edited by hand after a switch (it
  no longer equals base + overlay) unless ``--force``: edit the overlay instead.

Also ensures every per-dataset section lists every dataset of ``datasets`` (an empty mapping where
there is no override), because dvc.yaml tracks ``<section>.<dataset>`` and DVC fails on a missing key.
"""

from __future__ import annotations

import argparse
import copy
import io
import sys
from pathlib import Path
from typing import Any

BASE = "demo"
REPLACE = "_replace"
# sections whose per-dataset entries dvc.yaml lists as params (`<section>.${item}`)
PER_DATASET_SECTIONS = ("ingest", "align", "split", "balance", "augment", "shard")


class ProfileError(ValueError):
    """A profile that cannot be applied (unknown name, bad overlay, hand-edited params)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="profile to switch to (omit to list the profiles)")
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file (default: params.yaml)")
    parser.add_argument("--profiles", default=None, type=Path,
                        help="directory of overlays (default: profiles/ beside the params file)")
    parser.add_argument("--force", action="store_true", help="overwrite a hand-edited params.yaml")


def _yaml():
    from ruamel.yaml import YAML

    y = YAML()  # round-trip: keeps comments and key order
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)  # the style of params.yaml
    y.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return y


def _load(text: str) -> Any:
    return _yaml().load(text)


def _dump(data: Any) -> str:
    buf = io.StringIO()
    _yaml().dump(data, buf)
    return buf.getvalue()


def _plain(data: Any) -> Any:
    """ruamel containers as plain dicts/lists (for comparisons)."""
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data


def available(profiles_dir: Path) -> list[str]:
    """Profile names: the base and one per overlay file."""
    names = {p.stem for p in profiles_dir.glob("*.yaml")} if profiles_dir.is_dir() else set()
    return [BASE] + sorted(names - {BASE})


def apply_overlay(base: Any, overlay: dict[str, Any], where: str = "",
                  defaults: dict[str, Any] | None = None) -> None:
    """Merge ``overlay`` into ``base`` in place (mappings recursively, anything else replaced).

    A mapping of the overlay with ``_replace: true`` replaces the base's mapping as a whole. A
    ``matrix`` (of runs) may gain entries the base does not have.

    Args:
        base: the params (or a mapping inside them), modified in place.
        overlay: the overlay's mapping at the same place.
        where: dotted path of ``base``, for messages.
        defaults: inside a per-dataset/per-model entry, the section's ``defaults`` at the same
            place: the keys an entry may override although the base entry does not list them.

    Raises:
        ProfileError: for a key neither the base nor the section's defaults know (a typo).
    """
    for key, value in overlay.items():
        path = f"{where}.{key}" if where else str(key)
        replace = isinstance(value, dict) and value.get(REPLACE) is True
        if replace:
            value = copy.copy(value)  # keeps the overlay's YAML style
            del value[REPLACE]
        # a `matrix` lists runs: an overlay may add runs to it (e.g. the papers' ablations)
        known = (key in base or (defaults is not None and key in defaults) or "defaults" in base
                 or where.rsplit(".", 1)[-1] == "matrix")
        if not known:
            raise ProfileError(f"{path}: not a key of the base params (typo?)")
        if "defaults" in base and key != "defaults":
            sub_defaults = base["defaults"]  # entering a per-dataset / per-model entry
        elif defaults is not None and isinstance(defaults.get(key), dict):
            sub_defaults = defaults[key]
        else:
            sub_defaults = None
        if key not in base or replace or not (isinstance(value, dict) and isinstance(base[key], dict)):
            base[key] = value
        else:
            apply_overlay(base[key], value, path, sub_defaults)


def complete_datasets(params: Any) -> list[str]:
    """Add an empty entry for every dataset missing from a per-dataset section; return what was added."""
    from ruamel.yaml.comments import CommentedMap

    added = []
    for name in PER_DATASET_SECTIONS:
        sec = params.get(name)
        if not isinstance(sec, dict) or "defaults" not in sec:
            continue
        for ds in params.get("datasets") or []:
            if ds not in sec:
                m = CommentedMap()
                m.fa.set_flow_style()
                sec[ds] = m
                added.append(f"{name}.{ds}")
    return added


def compose(base_text: str, name: str, profiles_dir: Path) -> str:
    """The params text of profile ``name``: the base with the overlay applied (base itself for demo)."""
    if name == BASE:
        return base_text
    overlay_file = profiles_dir / f"{name}.yaml"
    if not overlay_file.is_file():
        raise ProfileError(f"{overlay_file}: no such profile (known: {', '.join(available(profiles_dir))})")
    overlay = _load(overlay_file.read_text()) or {}
    if not isinstance(overlay, dict):
        raise ProfileError(f"{overlay_file}: expected a mapping")
    overlay.pop("profile", None)
    params = _load(base_text)
    try:
        apply_overlay(params, overlay)
    except ProfileError as exc:
        raise ProfileError(f"{overlay_file}: {exc}") from None
    params["profile"] = name
    complete_datasets(params)
    taught = taught_train_pairs(_plain(params))
    if taught:
        raise ProfileError(f"{overlay_file}: train.matrix pairs whose recipe learns from a teacher: "
                           f"{', '.join(taught)}; the train stage does not support teachers yet (the "
                           "teacher's checkpoint would be an undeclared dependency): train them in the cv "
                           "stage (cv.<dataset>.models) and drop them from train.matrix and evaluate.matrix")
    unpretrained = unpretrained_recipes(_plain(params))
    if unpretrained:
        raise ProfileError(f"{overlay_file}: recipes with init: pretrained that pretrain.models does not list: "
                           f"{', '.join(unpretrained)} (stage pretrain would not make their starting weights)")
    return _dump(params)


def unpretrained_recipes(params: dict[str, Any]) -> list[str]:
    """The recipes the profile runs (``train.matrix``, ``cv.<dataset>.models`` of ``cv.datasets``)
    with ``init: pretrained`` but missing from ``pretrain.models``."""
    from pipeline.params import section
    from pipeline.training.pretraining import init_of

    used = {pair["model"] for pair in ((params.get("train") or {}).get("matrix") or {}).values()}
    for ds in (params.get("cv") or {}).get("datasets") or []:
        used |= set(section("cv", ds, params).get("models") or [])
    listed = set((params.get("pretrain") or {}).get("models") or [])
    return sorted(m for m in used if init_of(section("train", m, params)) == "pretrained" and m not in listed)


def taught_train_pairs(params: dict[str, Any]) -> list[str]:
    """The ``train.matrix`` entries (as ``key (train.<model>.teacher: <teacher>)``) whose recipe has a
    ``teacher``: `dvc repro` would stop at their train stage, so a profile may not list them."""
    from pipeline.params import section
    from pipeline.training.recipe import for_dataset, teacher_of

    taught = []
    for key, pair in ((params.get("train") or {}).get("matrix") or {}).items():
        teacher = teacher_of(for_dataset(section("train", pair["model"], params), pair["dataset"]))
        if teacher:
            taught.append(f"{key} (train.{pair['model']}.teacher: {teacher})")
    return taught


def switch(name: str, params_file: Path, profiles_dir: Path | None = None, force: bool = False) -> str:
    """Write profile ``name`` into ``params_file``; returns a one-line description of what happened."""
    from pipeline.atomic import write_text

    profiles_dir = profiles_dir or params_file.parent / "profiles"
    if not params_file.is_file():
        raise ProfileError(f"{params_file}: params file not found")
    current_text = params_file.read_text()
    current = _plain(_load(current_text)) or {}
    current_name = current.get("profile", BASE)
    snapshot = profiles_dir / f"{BASE}.yaml"
    if current_name == BASE:
        base_text = current_text
    else:
        if not snapshot.is_file():
            raise ProfileError(f"{snapshot}: the demo base is missing; restore params.yaml from git")
        base_text = snapshot.read_text()
        expected = _plain(_load(compose(base_text, current_name, profiles_dir)))
        if expected != current and not force:
            raise ProfileError(
                f"{params_file} was edited after switching to {current_name!r} (it differs from "
                f"{BASE} + profiles/{current_name}.yaml); put the change in the overlay, or --force")
    text = compose(base_text, name, profiles_dir)
    if current_name == BASE and name != BASE:
        write_text(snapshot, base_text)
    write_text(params_file, text)
    if name == BASE:
        snapshot.unlink(missing_ok=True)
    return f"{params_file}: profile {current_name} -> {name}"


def run(args: argparse.Namespace) -> int:
    profiles_dir = args.profiles or args.params.parent / "profiles"
    if not args.name:
        for name in available(profiles_dir):
            print(name)
        return 0
    try:
        print(switch(args.name, args.params, profiles_dir, force=args.force))
    except ProfileError as exc:
        print(f"fer-pipeline profile: error: {exc}", file=sys.stderr)
        return 2
    print("next: dvc repro (re-runs the stages whose params changed)")
    return 0
