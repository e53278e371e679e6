"""The DVCLive logger of every training run (imported lazily: ``dvclive`` takes a second to import).

DVCLive tells the DVC VS Code extension that a step has completed through one signal file per
repository (``.dvc/tmp/exps/run/DVCLIVE_STEP_COMPLETED``): ``next_step`` writes it, ``end`` checks
that it exists and then removes it. Two runs in the same repository at once (the cross-validation
fold workers) can both pass the check, and the slower one's ``os.remove`` then fails although its
run has been logged completely. ``RunLive.end`` treats that one vanished file as done.
"""

from __future__ import annotations

from pathlib import Path

from dvclive import Live

STEP_SIGNAL = "DVCLIVE_STEP_COMPLETED"


class RunLive(Live):
    """``dvclive.Live`` whose ``end`` tolerates another process removing the shared step signal."""

    def end(self) -> None:
        try:
            super().end()
        except FileNotFoundError as err:  # removing the signal file is the last thing end() does
            if Path(err.filename or "").name != STEP_SIGNAL:
                raise


def open_live(out_dir: Path, resume: bool) -> RunLive:
    """A logger in ``<out_dir>/dvclive`` that never touches git (``save_dvc_exp=False``)."""
    return RunLive(str(out_dir / "dvclive"), dvcyaml=False, save_dvc_exp=False, resume=resume)
