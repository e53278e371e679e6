"""Align one dataset: plan chunks, run the missing ones as Prefect tasks, merge, account.

Resumable and incremental: chunk results live in ``<out parent>/.<out name>.parts/<key>/``
(beside the output, so ``dvc repro`` clearing the output keeps them). Nothing is reused unverified:
a part is reused only when each of its files matches the sha256 recorded when it was written
(a corrupt, truncated or unrecorded part is removed and recomputed), and an output with the same
fingerprint means no work at all only when each of its files matches the record of the merge that
wrote it (``output.json`` in the parts directory); an output that does not is merged again from
the verified parts. After a successful merge, parts of other keys (older settings or inputs) and
temporary directories of killed runs are pruned.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from pipeline.align.chunks import PART, ChunkSpec, align_chunk, part_problem, plan_chunks
from pipeline.align.outputs import OUTPUT_RECORD, SUMMARY, merge, output_problem, run_fingerprint
from pipeline.align.settings import AlignSettings
from pipeline.core import atomic

MANIFEST = "manifest.parquet"


def manifest_file(path: str | Path) -> Path:
    """``manifest.parquet`` of an ingest output directory (or the file itself); clear error if absent."""
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{file}: manifest not found (run `fer-pipeline ingest` first)")
    return file


def align_dataset(manifest: str | Path, out: str | Path, dataset: str, settings: AlignSettings,
                  runner: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Align every manifest row of ``dataset`` into ``out``; return the summary.

    Args:
        manifest: ingest output directory or its manifest.parquet.
        out: output directory (crops.parquet, outcomes.parquet, summary.json, contact_sheet.png).
        dataset: dataset name (flow name, summary).
        settings: the dataset's align settings.
        runner: a ``flow.runner`` mapping for :func:`pipeline.runner.flows.run_chunks`
            (``None``: params.yaml ``flow.runner``).
        progress: show a tqdm bar (images/second).

    Returns:
        The summary, plus ``chunks`` / ``computed`` (chunks run now, 0 when up to date) and
        ``up_to_date`` (nothing was written: the outputs verified).

    Raises:
        pipeline.align.chunks.CorruptPart: a part failed its check while being merged (names the file).
    """
    from pipeline.runner import flows

    manifest, out = manifest_file(manifest), Path(out)
    parts = atomic.parts_dir(out)
    specs = list(plan_chunks(manifest, settings, parts))
    fingerprint = run_fingerprint(specs, settings)
    record = parts / OUTPUT_RECORD
    problem = output_problem(out, record, fingerprint)
    if problem is None:
        summary = json.loads((out / SUMMARY).read_text())
        return {**summary, "chunks": len(specs), "computed": 0, "up_to_date": True}
    if out.exists():
        _note(f"align {dataset}: rewriting {out}: {problem}")
    todo, bad = [], []
    for spec in specs:
        why = part_problem(spec)
        if why is not None:
            todo.append(spec)
            if spec.part_dir.exists():
                bad.append(why)
                shutil.rmtree(spec.part_dir, ignore_errors=True)  # untrusted: recomputed from scratch
    if bad:
        _note(f"align {dataset}: recomputing {len(bad)} part(s) that fail verification; first: {bad[0]}")
    if todo:
        with _Progress(todo, dataset, enabled=progress):
            flows.run_chunks(f"align-{dataset}", functools.partial(align_chunk, settings=settings),
                                     todo, runner=runner)
    summary = merge(manifest, specs, out, dataset, settings, fingerprint, record=record)
    keep = {s.key for s in specs}
    for stale in parts.iterdir():
        if stale.is_dir() and stale.name not in keep and atomic.temp_state(stale) != "live":
            shutil.rmtree(stale, ignore_errors=True)
    return {**summary, "chunks": len(specs), "computed": len(todo), "up_to_date": False}


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Progress:
    """A tqdm bar (images, images/second) fed by watching part directories appear.

    Works whatever runs the chunks (threads, Dask processes): completion is visible on disk.
    """

    def __init__(self, todo: Sequence[ChunkSpec], dataset: str, enabled: bool) -> None:
        self.todo, self.dataset, self.enabled = list(todo), dataset, enabled
        self._stop = threading.Event()

    def __enter__(self) -> "_Progress":
        if self.enabled:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()

    def _watch(self) -> None:
        from tqdm import tqdm

        pending = list(self.todo)
        total = sum(s.stop - s.start for s in pending)
        with tqdm(total=total, unit="img", desc=f"align {self.dataset}", smoothing=0.1) as bar:
            while pending:
                stopping = self._stop.wait(0.5)
                done = [s for s in pending if (s.part_dir / PART).is_file()]
                for s in done:
                    bar.update(s.stop - s.start)
                pending = [s for s in pending if s not in done]
                if stopping:
                    break
