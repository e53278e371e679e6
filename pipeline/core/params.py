"""Read ``params.yaml``: one file holds every knob, DVC tracks the keys each stage reads.

Sections that vary per dataset (or per model) hold a ``defaults`` mapping and one mapping per
dataset (or model) with its overrides::

    align:
      defaults: {policy: detect, size: 112}
      fer2013: {policy: precropped, size: 48}

``section("align", "fer2013")`` deep-merges the two. dvc.yaml lists ``align.defaults`` and
``align.${item}`` for ``align@${item}``, so changing one dataset's override re-runs that dataset only.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

PARAMS_ENV = "FER_PARAMS"


def add_argument(parser) -> None:
    """The ``--params`` option of every stage and command that reads params.yaml."""
    parser.add_argument("--params", default=None, help=f"params file (default: ${PARAMS_ENV} or ./params.yaml)")


def params_path(path: str | os.PathLike | None = None) -> Path:
    """The params file: ``path``, else ``$FER_PARAMS``, else ``./params.yaml``."""
    return Path(path or os.environ.get(PARAMS_ENV) or "params.yaml")


def load(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The whole params file as a dict, checked against the schema (:mod:`pipeline.core.schema`):
    a missing file, a file that is not a mapping, an unknown key or a wrong value is a one-line
    ``ParamsError`` (a ``ValueError``) naming the file and the key."""
    from pipeline.core.schema import ParamsError, validate

    p = params_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: params file not found (run from the project root or set ${PARAMS_ENV})")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{p}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    validate(data, p)
    return data


def section(name: str, key: str | None = None, params: dict[str, Any] | None = None,
            path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Settings of section ``name``: its ``defaults`` merged with the entry for ``key`` (if any).

    A section without ``defaults`` is returned as it is.
    """
    from pipeline.core.schema import deep_merge

    params = load(path) if params is None else params
    if name not in params:
        raise KeyError(f"{params_path(path)}: no section {name!r}")
    sec = params[name] or {}
    if "defaults" not in sec:
        return copy.deepcopy(sec)
    return deep_merge(sec["defaults"], sec.get(key) if key else None)
