"""One row per model variant of the zoo: parameters and FLOPs measured here against the papers' numbers.

Reads each model's ``default_cfgs`` / ``VARIANTS`` through ``fer_models.model_default_cfg`` and
``fer_models.model_variants`` (the convention is documented in ``fer_models/registry.py``), so new
model files appear without changes here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

__all__ = ["ZooRow", "zoo_rows", "format_table"]


@dataclass(frozen=True)
class ZooRow:
    """Measured and published complexity of one model variant at the paper's input size."""

    model: str
    variant: str
    input_size: tuple[int, ...]
    params: int
    flops: int
    flops_convention: str
    paper_params: int | None
    paper_flops: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def zoo_rows(models: Iterable[str] | None = None, variants: bool = True, num_classes: int | None = None) -> list[ZooRow]:
    """Build every (model, variant) and measure it.

    Args:
        models: registered model names (default: all of ``fer_models.list_models()``).
        variants: include every named variant, not only ``default``.
        num_classes: classes of the built models (default: the cfg's ``num_classes``, else 7).

    Raises:
        KeyError: for an unknown model name.
    """
    import torch

    import fer_models
    from pipeline.evaluation.complexity import count_flops, count_params

    rows = []
    for name in models or fer_models.list_models():
        cfg = fer_models.model_default_cfg(name)
        input_size = tuple(cfg.get("input_size", (3, 224, 224)))
        convention = cfg.get("flops_convention", "fvcore")
        named = fer_models.model_variants(name)
        for variant, kwargs in named.items():
            if not variants and variant != "default":
                continue
            paper = cfg if variant == "default" else cfg.get("variants", {}).get(variant, {})
            torch.manual_seed(0)
            model = fer_models.create_model(name, num_classes=num_classes or cfg.get("num_classes", 7),
                                            in_chans=input_size[0], **kwargs)
            rows.append(ZooRow(
                model=name,
                variant=variant,
                input_size=input_size,
                params=count_params(model),
                flops=count_flops(model, (1, *input_size), convention),
                flops_convention=convention,
                paper_params=paper.get("paper_params"),
                paper_flops=paper.get("paper_flops"),
            ))
    return rows


def _si(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}f}{unit}"
    return f"{value:g}"


def _paper_params(value: int | None) -> str:
    """Exact counts as they are; counts the paper rounded (to thousands or more) as the paper wrote them."""
    if value is None:
        return "-"
    if value % 1000:
        return f"{value:,}"
    return f"{value / 1e6:.6f}".rstrip("0").rstrip(".") + "M"


def format_table(rows: Iterable[ZooRow]) -> str:
    """A Markdown table of ``rows``: exact parameter counts, FLOPs in M/G, the papers' figures beside them."""
    header = ["model", "variant", "input", "params", "paper params", "FLOPs", "paper FLOPs", "FLOP convention"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r.model, r.variant, "x".join(map(str, r.input_size)), f"{r.params:,}",
                 _paper_params(r.paper_params), _si(r.flops), _si(r.paper_flops),
                 r.flops_convention]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
