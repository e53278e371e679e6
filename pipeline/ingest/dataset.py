"""Ingest one dataset: its reader's scan, decoded chunk by chunk, accounted for and written by the
:class:`~pipeline.ingest.manifest.ManifestWriter` into ``manifest.parquet`` (+ quarantine, summary).

The reader (:mod:`pipeline.ingest.readers`) lists candidates and quarantined inputs in a fixed
order; candidates are decoded by the pure :func:`pipeline.ingest.readers.decode.decode_chunk`, a
window of chunks at a time (one Prefect flow run per window when the stage runs them as tasks,
:mod:`pipeline.runner.flows`), each window sized to a byte budget so memory stays bounded.
"""

from __future__ import annotations

import itertools
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Iterator

from pipeline.runner.flows import RunWindow, in_process


class _Windows:
    """Consecutive windows of chunks of scan items, sized so a window's decoded PNGs stay near a budget.

    The first window is one chunk; after each window the next holds as many chunks (at most
    ``max_chunks``) as fit ``budget_bytes`` at the PNG bytes per image seen so far. Windows only
    bound memory: the writer's row groups, hence the output bytes, do not depend on them.
    """

    def __init__(self, items: Iterable[Any], chunk_size: int, max_chunks: int, budget_bytes: int) -> None:
        self._it = iter(items)
        self.chunk_size, self.max_chunks, self.budget = chunk_size, max_chunks, budget_bytes
        self._next = 1
        self._bytes = self._images = 0

    def record(self, png_bytes: int, images: int) -> None:
        """Account for a decoded window and size the next one."""
        self._bytes += png_bytes
        self._images += images
        if self._images:
            per_chunk = self._bytes / self._images * self.chunk_size
            self._next = max(1, min(self.max_chunks, int(self.budget // max(per_chunk, 1))))

    def __iter__(self) -> Iterator[list[list[Any]]]:
        while True:
            window = []
            for _ in range(self._next):
                chunk = list(itertools.islice(self._it, self.chunk_size))
                if not chunk:
                    break
                window.append(chunk)
            if not window:
                return
            yield window


def ingest_dataset(dataset: str, raw: Path, out: Path, cfg: dict[str, Any],
                   run_window: RunWindow = in_process, progress: bool = True) -> dict[str, Any]:
    """Ingest ``raw`` (the native layout of ``dataset``) into ``out``; returns the summary.

    Args:
        dataset: a name known to :func:`pipeline.ingest.readers.get_reader`.
        raw: the raw root; a missing or wrongly laid out root raises ``LayoutError`` at once.
        out: the output directory, replaced atomically.
        cfg: ``ingest`` params for the dataset (``chunk_size``, ``window_chunks``, ``window_bytes``,
            ``chunk_bytes``, ``drop_duplicates``, ``png_level``, ``max_pixels``, ``max_side`` and the
            reader's own keys).
        run_window: runs the decoder over one window of chunks, results in chunk order
            (:func:`pipeline.runner.flows.in_process` or Prefect tasks).
        progress: show a tqdm progress bar (on a terminal).
    """
    from tqdm import tqdm

    from pipeline.ingest.manifest import ManifestWriter
    from pipeline.ingest.readers import Record, get_reader
    from pipeline.ingest.readers.decode import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, decode_chunk

    limits = {key: int(cfg.get(key, default)) for key, default in  # ranges: checked by the params schema
              (("max_pixels", DEFAULT_MAX_PIXELS), ("max_side", DEFAULT_MAX_SIDE))}
    reader = get_reader(dataset)
    scan = reader.scan(Path(raw), cfg)
    chunk_size = int(cfg.get("chunk_size", 256))
    window_chunks = int(cfg.get("window_chunks", 16))
    decode = partial(decode_chunk, png_level=int(cfg.get("png_level", 3)), **limits)
    with ManifestWriter(out, dataset, chunk_size=chunk_size, chunk_bytes=int(cfg.get("chunk_bytes", 64 << 20)),
                        drop_duplicates=bool(cfg.get("drop_duplicates", True))) as writer, \
            tqdm(total=scan.total, desc=f"ingest {dataset}", unit="img", disable=None if progress else True) as bar:
        windows = _Windows(scan.items, chunk_size, window_chunks, int(cfg.get("window_bytes", 256 << 20)))
        for window in windows:
            png_bytes = images = 0
            for results in run_window(decode, window):
                for result in results:
                    writer.add(result)
                    if isinstance(result, Record):
                        png_bytes, images = png_bytes + len(result.png), images + 1
                bar.update(len(results))
            windows.record(png_bytes, images)
        if writer.read == 0:  # an empty tree is a wrong root, not an empty dataset: keep the old output
            raise reader.layout_error(Path(raw), "no input images found")
        return writer.finish(scan.info)


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few human lines (printed by the stage)."""
    lines = [f"{summary['dataset']}: read {summary['read']} = kept {summary['kept']} + "
             f"quarantined {summary['quarantined']}  (layout {summary.get('layout')})"]
    if summary["per_class"]:
        lines.append("  per class: " + ", ".join(f"{k} {v}" for k, v in summary["per_class"].items()))
    if summary["per_source_split"]:
        lines.append("  per source split: " + ", ".join(f"{k} {v}" for k, v in summary["per_source_split"].items()))
    if summary["per_reason"]:
        lines.append("  quarantined: " + ", ".join(f"{k} {v}" for k, v in summary["per_reason"].items()))
    if summary.get("downscaled"):
        lines.append(f"  downscaled {summary['downscaled']} large image(s) to ingest.max_side "
                     f"(original size in extra.downscaled_from)")
    if summary.get("ignored"):
        ign = summary["ignored"]
        lines.append(f"  ignored {ign['count']} non-image/unused file(s) ({ign['why']}), e.g. "
                     + ", ".join(ign["examples"][:3]))
    return "\n".join(lines)
