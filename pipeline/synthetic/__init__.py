"""Synthetic FER datasets in their exact native layouts, so the pipeline runs without licensed data.

Faces are drawn procedurally (:mod:`.faces`, shaded so that MTCNN finds them), deformed by the
expression recipes of :mod:`.expressions`, framed and photographed by :mod:`.photo`, and written
in each dataset's native file layout by :mod:`.layouts`.

Public entry points: :func:`write_sample` (all or some datasets under one raw root, as
``fer-pipeline sample`` does) and :func:`write_dataset` (one dataset, with layout variants such as
``files=("icml",)`` for FER2013 or ``layout="ckplus48"`` for CK+, used by tests).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from pipeline.core.atomic import atomic_path, write_text
from pipeline.synthetic.layouts import WRITERS

#: File beside the dataset folders that records what ``write_sample`` generated.
MARKER = ".synthetic-sample.json"


def write_dataset(name: str, root: str | os.PathLike, per_class: int, seed: int = 0, **variant: Any) -> list[str]:
    """Write dataset ``name`` into directory ``root`` (replaced atomically); return the files written.

    Args:
        name: one of ``fer2013, ckplus, jaffe, rafdb, kdef``.
        root: the dataset's own directory, e.g. ``data/raw/ckplus``.
        per_class: examples per class in the dataset's unit of labelling (see
            :mod:`pipeline.synthetic.layouts`).
        seed: fixes every byte of the output.
        **variant: writer options: ``files`` (fer2013), ``layout`` (ckplus), ``angles`` (kdef).
    """
    if name not in WRITERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(WRITERS)}")
    if int(per_class) < 1:
        raise ValueError(f"{name}: per_class must be >= 1, got {per_class}")
    with atomic_path(root) as tmp:
        tmp.mkdir()
        files = WRITERS[name](tmp, int(per_class), int(seed), **variant)
    return sorted(files)


def write_sample(out: str | os.PathLike, datasets: Iterable[str] | None = None,
                 per_class: int | Mapping[str, int] | None = None, seed: int = 0,
                 force: bool = False, jobs: int | None = None) -> dict[str, int]:
    """Write the synthetic sample of ``datasets`` (default: all) as ``out/<dataset>/``.

    Args:
        out: the raw data root (``data/raw``).
        datasets: names to write; default every dataset.
        per_class: one count for all datasets, or a mapping name -> count (missing names use
            the ``sample`` section of params.yaml); None reads everything from params.yaml.
        seed: the generator seed.
        force: overwrite a dataset folder that this generator did not write (real data!).
        jobs: worker processes (one dataset each); default: the number of CPUs.

    Returns:
        Number of files written per dataset.
    """
    from pipeline.core.params import section

    out = Path(out)
    names = list(datasets or WRITERS)
    marker = out / MARKER
    ours = set(json.loads(marker.read_text()).get("datasets", {})) if marker.is_file() else set()
    for name in names:
        target = out / name
        if target.exists() and any(target.iterdir()) and name not in ours and not force:
            raise FileExistsError(f"{target}: exists and was not written by the sample generator "
                                  f"(real data?); remove it or pass --force")
    sizes: dict[str, int] = {}
    for name in names:
        if isinstance(per_class, Mapping) and name in per_class:
            sizes[name] = int(per_class[name])
        elif isinstance(per_class, int):
            sizes[name] = per_class
        else:
            sizes[name] = int(section("sample", name)["per_class"])
    record: dict[str, Any] = json.loads(marker.read_text()) if marker.is_file() else {}
    record.setdefault("datasets", {})
    counts: dict[str, int] = {}
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(names)))
    if jobs == 1:
        results = ((name, write_dataset(name, out / name, sizes[name], seed)) for name in names)
    else:  # datasets are independent: one process each (bytes do not depend on the order)
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=jobs)
        futures = {name: pool.submit(write_dataset, name, out / name, sizes[name], seed) for name in names}
        results = ((name, futures[name].result()) for name in names)
    try:
        for name, files in results:
            counts[name] = len(files)
            record["datasets"][name] = {"per_class": sizes[name], "seed": int(seed), "files": counts[name]}
            write_text(marker, json.dumps(record, indent=2, sort_keys=True) + "\n")
    finally:
        if jobs > 1:
            pool.shutdown(cancel_futures=True)
    return counts
