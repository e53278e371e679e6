"""``fer-pipeline profile NAME``: switch ``params.yaml`` to a named profile (demo, paper, ckplus48, fer2013).

Without NAME, lists the profiles. The work is in :mod:`pipeline.profiles`; a profile whose
recipes could not run is refused (:func:`pipeline.training.recipe.check_profile`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="profile to switch to (omit to list the profiles)")
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file (default: params.yaml)")
    parser.add_argument("--profiles", default=None, type=Path,
                        help="directory of overlays (default: profiles/ beside the params file)")
    parser.add_argument("--force", action="store_true", help="overwrite a hand-edited params.yaml")


def run(args: argparse.Namespace) -> int:
    from pipeline.profiles import ProfileError, available, switch
    from pipeline.training.recipe import check_profile

    profiles_dir = args.profiles or args.params.parent / "profiles"
    if not args.name:
        for name in available(profiles_dir):
            print(name)
        return 0
    try:
        print(switch(args.name, args.params, profiles_dir, force=args.force, validate=check_profile))
    except ProfileError as exc:
        print(f"fer-pipeline profile: error: {exc}", file=sys.stderr)
        return 2
    print("next: dvc repro (re-runs the stages whose params changed)")
    return 0
