"""The pipeline's stages as DVC sees them: names, dependencies, a run order, which are stale.

Read through DVC's Python API (``dvc.repo.Repo``), never by parsing dvc.yaml ourselves, so the
rebuild flow (:mod:`pipeline.runner.rebuild`) runs exactly the graph ``dvc repro`` would: foreach
stages expanded (``align@jaffe``), params interpolated, ``.dvc`` data sources included
(``data/raw/jaffe.dvc``). Stage names are DVC's addressing, what ``dvc repro <name>`` accepts.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


class GraphError(ValueError):
    """The DVC pipeline could not be read, or a target matched no stage (a one-line message)."""


@dataclass(frozen=True)
class StageGraph:
    """Stages in run order (each after everything it depends on) and their direct upstream stages."""

    order: tuple[str, ...]
    upstream: dict[str, tuple[str, ...]]
    data_sources: frozenset[str]  # ``.dvc`` files (``dvc add`` outputs): checked, never computed

    def downstream(self, name: str) -> tuple[str, ...]:
        """The stages that directly depend on ``name``, in run order."""
        return tuple(s for s in self.order if name in self.upstream[s])

    def ancestors(self, names: Iterable[str]) -> set[str]:
        """``names`` and every stage they depend on, directly or not."""
        seen: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.upstream[name])
        return seen

    def select(self, targets: Sequence[str] | None) -> "StageGraph":
        """The stages matching ``targets`` (names or shell globs: ``align@*``, ``train@ean-*``)
        and all they depend on, as ``dvc repro <target>`` would run; everything when ``None``.

        Raises:
            GraphError: when a target matches no stage (names the target and a few stages).
        """
        if not targets:
            return self
        matched: set[str] = set()
        for pattern in targets:
            hits = [s for s in self.order if fnmatch.fnmatchcase(s, pattern)]
            if not hits:
                some = ", ".join(self.order[:8]) + (", ..." if len(self.order) > 8 else "")
                raise GraphError(f"target {pattern!r} matches no DVC stage (stages: {some})")
            matched.update(hits)
        keep = self.ancestors(matched)
        return StageGraph(
            order=tuple(s for s in self.order if s in keep),
            upstream={s: self.upstream[s] for s in self.order if s in keep},
            data_sources=frozenset(self.data_sources & keep),
        )


def stage_name(stage) -> str:
    """A stage's name as ``dvc repro`` takes it *in the repository's root*: ``align@jaffe`` for a
    stage of the root dvc.yaml, ``sub/dvc.yaml:name`` for another one, the ``.dvc`` file's path
    for a data source. (DVC's own ``addressing`` is relative to the current directory.)"""
    path = stage.path_in_repo.replace(os.sep, "/")
    name = getattr(stage, "name", None)  # PipelineStage only
    if name is None:
        return path
    return name if path == "dvc.yaml" else f"{path}:{name}"


def _open(repo_root: str | Path):
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        return Repo(str(repo_root))
    except DvcException as exc:
        raise GraphError(f"{repo_root}: {exc}") from None


def read_graph(repo_root: str | Path) -> StageGraph:
    """The DVC pipeline of ``repo_root`` as a :class:`StageGraph`.

    The run order is topological, stable from run to run, and reads stage by stage: every
    ``ingest@*``, then every ``align@*``, ... (see :func:`_topological`).

    Raises:
        GraphError: dvc.yaml, a ``.dvc`` file or params.yaml could not be read (one line).
    """
    from dvc.exceptions import DvcException

    repo = _open(repo_root)
    try:
        with repo:
            # dvc.yaml stages in their declared order, then .dvc files by path (their collection
            # order is the file system's)
            stages = sorted(repo.index.stages, key=lambda s: (s.is_data_source, stage_name(s) if s.is_data_source else ""))
            graph = repo.index.graph  # an edge (stage, dependency) per output a stage reads
            rank = {stage_name(s): i for i, s in enumerate(stages)}
            upstream: dict[str, set[str]] = {name: set() for name in rank}
            for stage, dependency in graph.edges:
                upstream[stage_name(stage)].add(stage_name(dependency))
            sources = frozenset(stage_name(s) for s in stages if s.is_data_source)
    except DvcException as exc:
        raise GraphError(f"{repo_root}: {' '.join(str(exc).split())}") from None
    return StageGraph(order=_topological(upstream, rank),
                      upstream={s: tuple(sorted(u, key=rank.get)) for s, u in upstream.items()},
                      data_sources=sources)


def _topological(upstream: dict[str, set[str]], rank: dict[str, int]) -> tuple[str, ...]:
    """Stages by level (0: depends on no stage; else 1 + its deepest upstream stage's level),
    then by declaration rank: a topological order that reads stage by stage. Kahn's algorithm
    gives the levels (DVC refuses cyclic pipelines, so every stage gets one)."""
    waiting = {s: len(u) for s, u in upstream.items()}
    dependants: dict[str, list[str]] = {s: [] for s in upstream}
    for s, ups in upstream.items():
        for u in ups:
            dependants[u].append(s)
    level = {s: 0 for s, n in waiting.items() if n == 0}
    ready = list(level)
    while ready:
        s = ready.pop()
        for d in dependants[s]:
            level[d] = max(level.get(d, 0), level[s] + 1)
            waiting[d] -= 1
            if waiting[d] == 0:
                ready.append(d)
    return tuple(sorted(upstream, key=lambda s: (level[s], rank[s])))


def stale_stages(repo_root: str | Path, names: Iterable[str]) -> dict[str, list]:
    """``dvc status`` of the pipeline, limited to ``names``: stage name -> what changed.

    A stage missing here is up to date *now*; it can still become stale when a stage it
    depends on runs and changes its outputs (the rebuild flow asks DVC again then).
    """
    from dvc.exceptions import DvcException

    from dvc.repo import lock_repo

    wanted = set(names)
    stale: dict[str, list] = {}
    repo = _open(repo_root)
    try:
        with repo, lock_repo(repo):  # what `dvc status` does, keyed by our stage names
            for stage in repo.index.stages:
                name = stage_name(stage)
                if name in wanted:
                    changes = next(iter(stage.status().values()), None)
                    if changes:
                        stale[name] = changes
    except DvcException as exc:
        raise GraphError(f"{repo_root}: {' '.join(str(exc).split())}") from None
    return stale
