"""Which torch device a stage or command runs on: the one rule behind every ``device`` setting.

One setting for the whole pipeline: the top-level ``device`` key of ``params.yaml`` (``auto``,
``cpu``, ``cuda``, ``cuda:N`` or ``mps``; the schema checks its spelling), which every stage that
runs a network reads (align's MTCNN, pretrain, train, distill, evaluate, cv) and which a stage's
``--device`` overrides for one run. :func:`resolve_device` turns a name into a ``torch.device``
and refuses, in one line, a device this machine does not have: asking for CUDA where there is
none is a mistake to report, not a reason to fall back to the CPU silently (only ``auto`` falls
back). No torch import at module level: stage entries import this for their ``--device`` option.
"""

from __future__ import annotations

from pipeline.core.schema import DEVICE_NAMES, check_device_name


class DeviceError(ValueError):
    """A device setting this machine cannot honour, or an unknown name: one line naming where it was set."""


def resolve_device(name: str | None, where: str = "device") -> "torch.device":  # noqa: F821
    """``auto`` (or empty) means CUDA when present, else CPU; otherwise the named device, which must
    exist here. Raises :class:`DeviceError` (``<where> <name>: <why>``, one line) for an unknown
    name, ``cuda`` on a machine without CUDA, ``cuda:N`` beyond its GPUs, ``mps`` without MPS."""
    import torch

    if not name or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = check_device_name(name)
    if problem is not None:
        raise DeviceError(f"{where}: {problem}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "built without CUDA" if torch.version.cuda is None else f"CUDA {torch.version.cuda} build, no GPU visible"
            raise DeviceError(f"{where} {name}: CUDA is not available on this machine (torch {torch.__version__}, "
                              f"{build}); use cpu or auto")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"{where} {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    elif name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError(f"{where} {name}: Apple's MPS is not available on this machine; use cpu or auto")
    return torch.device(name)


def add_argument(parser) -> None:
    """The ``--device`` option of every stage that runs a network."""
    parser.add_argument("--device", default=None,
                        help=f"{DEVICE_NAMES} (default: params.yaml `device`; auto = CUDA when present, else CPU)")


def stage_device(flag: str | None, params_file=None) -> "torch.device":  # noqa: F821
    """The device of a stage run: ``--device`` when given, else ``params.yaml``'s top-level
    ``device`` (``auto`` when absent), resolved by :func:`resolve_device`; an error names the option
    or the file and key."""
    if flag:
        return resolve_device(flag, "--device")
    from pipeline.core.params import load, params_path

    return resolve_device(load(params_file).get("device", "auto"), f"{params_path(params_file)}: device")
