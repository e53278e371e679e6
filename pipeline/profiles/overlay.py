"""Profiles: named overlays of ``params.yaml`` (demo, paper, ckplus48, fer2013), applied by ``fer-pipeline profile``.

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

import copy
import io
from pathlib import Path
from typing import Any, Callable, Sequence

BASE = "demo"
REPLACE = "_replace"
# params an overlay may not set, and what they are derived from
DERIVED = {"evaluate.matrix": "train.matrix and distill.datasets (every trained run + the distilled EANs)"}
# sections whose per-dataset entries dvc.yaml lists as params (`<section>.${item}`)
PER_DATASET_SECTIONS = ("ingest", "align", "split", "balance", "augment", "shard")


class ProfileError(ValueError):
    """A profile that cannot be applied (unknown name, bad overlay, hand-edited params)."""


def _yaml():
    from ruamel.yaml import YAML

    y = YAML()  # round-trip: keeps comments and key order
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)  # the style of params.yaml
    y.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    y.representer.add_representer(float, _represent_float)
    return y


def _represent_float(rep, value: float):
    """A float as YAML 1.1 readers (PyYAML) read it back as a float: ``1.0e-05``, not ``1e-05``."""
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if not e or "." in mantissa or not mantissa.lstrip("-").isdigit():
        return rep.represent_float(value)  # plain decimals, inf and nan: ruamel's own way
    return rep.represent_scalar("tag:yaml.org,2002:float", f"{mantissa}.0e{exponent}")


def _load(text: str) -> Any:
    return _yaml().load(text)


def _dump(data: Any) -> str:
    buf = io.StringIO()
    _yaml().dump(data, buf)
    return buf.getvalue()


def _plain(data: Any) -> Any:
    """ruamel's containers and scalars as Python's own (for comparisons and validation; a ``--set``
    value so keeps no text form of its own: ``1e-4`` is written back as ``0.0001``, which every YAML
    reader reads as a float)."""
    from ruamel.yaml.scalarbool import ScalarBoolean

    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    if isinstance(data, ScalarBoolean):  # an int subclass, as bool: checked before int
        return bool(data)
    for kind in (bool, int, float, str):
        if isinstance(data, kind):
            return kind(data)
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
        if path in DERIVED:
            raise ProfileError(f"{path}: derived from {DERIVED[path]}; set those instead")
        if replace and isinstance(base.get(key), dict):
            base[key].clear()  # in place: a YAML anchor on it (train.matrix) stays where it is
            base[key].update(value)
        elif key not in base or replace or not (isinstance(value, dict) and isinstance(base[key], dict)):
            base[key] = value
        else:
            apply_overlay(base[key], value, path, sub_defaults)


def derive_evaluated_runs(params: Any) -> None:
    """Make ``evaluate.matrix`` what it must be: every trained run, merged from ``train.matrix``
    (``<<: *trained`` in params.yaml: one declaration of a run), + one ``ean_distilled-<dataset>``
    per ``distill.datasets``, in place."""
    from ruamel.yaml.comments import CommentedMap

    from pipeline.training.runs import DISTILLED

    trained, evaluated = params["train"]["matrix"], params["evaluate"]["matrix"]
    if not any(merged is trained for merged in getattr(evaluated, "merge", None) or []):
        raise ProfileError("evaluate.matrix must merge train.matrix (`<<: *trained`), as the demo params.yaml does")
    distilled = {f"{DISTILLED}-{d}": d for d in params["distill"].get("datasets") or []}
    # the keys merged in at load time may be stale (an overlay changed train.matrix since): what is
    # written is the merge key and these own entries
    for key in [k for k in evaluated if k not in trained and k not in distilled]:
        del evaluated[key]
    for key, dataset in distilled.items():
        if key not in evaluated:
            run = CommentedMap(model=DISTILLED, dataset=dataset)
            run.fa.set_flow_style()
            evaluated[key] = run


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


def assignment_overlay(assignment: str) -> dict[str, Any]:
    """``KEY=VALUE`` (a dotted params key, a YAML value), as DVC's ``exp run --set-param`` takes it,
    as the overlay that sets it: ``train.ean.epochs=40`` -> ``{train: {ean: {epochs: 40}}}``."""
    key, sep, text = assignment.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ProfileError(f"--set {assignment}: expected KEY=VALUE with a dotted key, e.g. train.ean.epochs=40")
    try:
        value = _plain(_load(text)) if text.strip() else None
    except Exception as exc:  # ruamel's parser errors have no common base worth naming
        raise ProfileError(f"--set {assignment}: the value is not YAML ({str(exc).splitlines()[0]})") from None
    overlay: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        overlay = {part: overlay}
    return overlay


def compose(base_text: str, name: str, profiles_dir: Path,
            validate: Callable[[dict[str, Any]], None] | None = None, assignments: Sequence[str] = ()) -> str:
    """The params text of profile ``name``: the base with the overlay applied (base itself for demo),
    then each ``KEY=VALUE`` of ``assignments`` (:func:`assignment_overlay`: a benchmark's lever tried
    without editing the profile; the same typo check as an overlay).

    ``validate`` checks the composed params (plain dicts) and raises ``ValueError`` for a profile
    that could not run, e.g. :func:`pipeline.training.recipe.check_profile`.
    """
    if name == BASE and not assignments:
        return base_text
    params = _load(base_text)
    overlay_file = profiles_dir / f"{name}.yaml"
    if name != BASE:
        if not overlay_file.is_file():
            raise ProfileError(f"{overlay_file}: no such profile (known: {', '.join(available(profiles_dir))})")
        overlay = _load(overlay_file.read_text()) or {}
        if not isinstance(overlay, dict):
            raise ProfileError(f"{overlay_file}: expected a mapping")
        overlay.pop("profile", None)
        try:
            apply_overlay(params, overlay)
        except ProfileError as exc:
            raise ProfileError(f"{overlay_file}: {exc}") from None
    for assignment in assignments:
        overlay = assignment_overlay(assignment)  # its own errors name the assignment
        try:
            apply_overlay(params, overlay)
        except ProfileError as exc:
            raise ProfileError(f"--set {assignment}: {exc}") from None
    params["profile"] = name
    complete_datasets(params)
    derive_evaluated_runs(params)
    from pipeline.core.schema import validate as check_schema

    source = " with ".join([str(overlay_file)] * (name != BASE) + [f"--set {a}" for a in assignments])
    try:
        check_schema(_plain(params), source)
    except ValueError as exc:
        raise ProfileError(str(exc)) from None
    if validate is not None:
        try:
            validate(_plain(params))
        except ValueError as exc:
            raise ProfileError(f"{source}: {exc}") from None
    return _dump(params)


def switch(name: str, params_file: Path, profiles_dir: Path | None = None, force: bool = False,
           validate: Callable[[dict[str, Any]], None] | None = None) -> str:
    """Write profile ``name`` into ``params_file``; returns a one-line description of what happened."""
    from pipeline.core.atomic import write_text

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
        expected = _plain(_load(compose(base_text, current_name, profiles_dir, validate)))
        if expected != current and not force:
            raise ProfileError(
                f"{params_file} was edited after switching to {current_name!r} (it differs from "
                f"{BASE} + profiles/{current_name}.yaml); put the change in the overlay, or --force")
    text = compose(base_text, name, profiles_dir, validate)
    if current_name == BASE and name != BASE:
        write_text(snapshot, base_text)
    write_text(params_file, text)
    if name == BASE:
        snapshot.unlink(missing_ok=True)
    return f"{params_file}: profile {current_name} -> {name}"
