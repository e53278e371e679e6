"""Which torch device a stage or command runs on: the one rule behind every ``device`` setting."""

from __future__ import annotations


def resolve_device(name: str | None) -> "torch.device":  # noqa: F821
    """``auto`` (or empty) means CUDA when present, else CPU; otherwise the named device."""
    import torch

    if not name or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
