"""Pretrained weights, timm-style: ``create_model(name, pretrained=...)`` ends here.

``pretrained`` is ``False`` (the network's own initialisation), ``True`` (the paper's weights where a
public source exists) or a path to a local state dict. A model file declares its source in
``default_cfgs[name]["pretrained"]`` (or, when it depends on the variant, a module-level
``pretrained_cfg(**kwargs)``). Keys of a source:

* ``source``: ``"torchvision"`` (fetched with torchvision's weights API into torch's cache,
  ``$TORCH_HOME/hub/checkpoints/``; nothing is fetched when the file is already there),
  ``"builtin"`` (the entrypoint loads them itself from an installed package, e.g. ``onet_probe``'s
  ONet weights inside facenet-pytorch: its own ``pretrained`` keyword) or ``"package"`` (a state
  dict shipped inside ``fer_models/weights/``, e.g. the FER2013-trained EAN: ``file``, ``sha256``
  checked before loading, and what a user needs around it: ``classes``, ``mean``, ``std``,
  ``input_size``, ``provenance``; written by :func:`publish`);
* ``weights``: the torchvision enum (``"ResNet50_Weights.IMAGENET1K_V1"``), ``url``, ``file`` (the
  name torch's cache and ``data/weights/`` give it) and ``target``: the submodule the state dict
  is for (``"backbone"``; ``None``: the whole model).

A local path holds either the whole model's state dict (any ``{"state_dict": ...}`` or
``{"model": ...}`` wrapper is unwrapped), whose classifier (``default_cfg["classifier"]``) is left
at its initialisation when its shape differs (another number of classes, as timm does), or the
state dict of the ``target`` submodule, e.g. a torchvision ResNet50 for DFNet's backbone. Weights
are copied exactly; errors are one line naming the file.

Depends on torch and torchvision only (never on ``pipeline``).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = ["DEFAULT_SHIPPED", "PretrainedUnavailable", "cached_file", "fetch", "load_pretrained", "package_file", "publish",
           "read_state_dict", "shipped_cfg"]

#: where ``package`` sources live: files installed with fer_models
PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"
#: the shipped network a user gets without naming one (``fer-pipeline predict`` with no model)
DEFAULT_SHIPPED = "ean"


class PretrainedUnavailable(RuntimeError):
    """The public weights are neither in torch's cache nor downloadable (offline): one line saying where
    to put the file."""


def cached_file(cfg: dict[str, Any]) -> Path:
    """Where torch's cache keeps (or will keep) the file of source ``cfg``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / cfg["file"]


def fetch(cfg: dict[str, Any], dest: str | os.PathLike | None = None) -> Path:
    """The file of public source ``cfg`` in torch's cache, fetched with torchvision's weights API
    (hash-checked) when it is not there yet; copied byte for byte to ``dest`` when given (written
    under a temporary name, then renamed). Returns the path of the file (``dest``, else the cache's).

    Raises :class:`PretrainedUnavailable` when it cannot be fetched, naming where to put it.
    """
    if cfg.get("source") != "torchvision":
        raise ValueError(f"{cfg.get('weights', cfg)}: only torchvision sources can be fetched")
    cache = cached_file(cfg)
    if not cache.is_file():
        from torchvision.models import get_weight

        try:
            get_weight(cfg["weights"]).get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # URLError, OSError, a bad hash: all mean "not available here"
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise PretrainedUnavailable(
                f"torchvision {cfg['weights']} could not be fetched ({reason[:160]}); offline, put {cfg['file']} "
                f"({cfg['url']}) at {dest or cache}") from None
        if not cache.is_file():
            raise PretrainedUnavailable(f"torchvision {cfg['weights']}: fetched, but not found at {cache}")
    if dest is None:
        return cache
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copyfile(cache, tmp)
    os.replace(tmp, dest)
    return dest


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a state dict file (``weights_only``: no code runs), unwrapped from a
    ``{"state_dict": ...}`` or ``{"model": ...}`` checkpoint; one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained weights not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a loadable state dict ({' '.join(str(exc).split())[:160]})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict (names -> tensors), got {type(state).__name__}")
    return state


def load_pretrained(model: nn.Module, name: str, pretrained: bool | str | os.PathLike,
                    cfg: dict[str, Any] | None, classifier: str | None = None) -> None:
    """Load ``pretrained`` (True: source ``cfg``; a path: a local state dict) into ``model`` (of
    registered ``name``), in place. ``classifier`` names the head whose weights are skipped when
    their shapes differ from the model's."""
    if pretrained is True and cfg and cfg.get("source") == "package":
        _load_whole(model, read_state_dict(package_file(cfg)), None, str(PACKAGE_WEIGHTS / cfg["file"]))
        return
    if pretrained is True:
        if not cfg or cfg.get("source") != "torchvision":
            raise ValueError(f"{name}: no public pretrained weights (pass pretrained=<path to a state dict>)")
        state = read_state_dict(fetch(cfg))
        _load_into_target(model, name, state, cfg, f"torchvision {cfg['weights']}")
        return
    path = Path(pretrained)
    state = read_state_dict(path)
    mine = model.state_dict()
    if sum(k in mine for k in state) * 2 >= len(state):  # mostly the model's own names: the whole model
        _load_whole(model, state, classifier, str(path))
    elif cfg and cfg.get("target"):
        _load_into_target(model, name, state, cfg, str(path))
    else:
        raise ValueError(f"{path}: not a state dict of {name} (its names do not match the model's)")


def _load_whole(model: nn.Module, state: dict[str, torch.Tensor], classifier: str | None, where: str) -> None:
    mine = model.state_dict()
    head = f"{classifier}." if classifier else None
    state = dict(state)
    for key in list(state):
        if head and key.startswith(head) and key in mine and state[key].shape != mine[key].shape:
            del state[key]  # another number of classes: the head keeps its initialisation
    wrong = [k for k in state if k in mine and state[k].shape != mine[k].shape]
    if wrong:
        raise ValueError(f"{where}: {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, the model "
                         f"{tuple(mine[wrong[0]].shape)} (another variant of the network?)")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not (head and k.startswith(head))]
    if missing or result.unexpected_keys:
        what = f"missing {missing[:3]}" if missing else f"unexpected {result.unexpected_keys[:3]}"
        raise ValueError(f"{where}: not a state dict of this network ({what})")


def _load_into_target(model: nn.Module, name: str, state: dict[str, torch.Tensor], cfg: dict[str, Any],
                      where: str) -> None:
    target = cfg.get("target")
    loader = getattr(model, f"load_{target}_state", None) if target else None
    if loader is None:
        _load_whole(model, state, None, where)
    else:
        loader(state, where)


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_file(cfg: dict[str, Any]) -> Path:
    """The shipped file of ``package`` source ``cfg``, after checking its sha256 (one-line errors)."""
    path = PACKAGE_WEIGHTS / cfg["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the shipped weights are missing (reinstall fer-pipeline)")
    digest = _sha256(path)
    if digest != cfg["sha256"]:
        raise ValueError(f"{path}: sha256 {digest[:16]}... is not the published {cfg['sha256'][:16]}... "
                         f"(a damaged or replaced file: reinstall fer-pipeline)")
    return path


def shipped_cfg(name: str) -> dict[str, Any] | None:
    """The ``package`` source of model ``name`` when fer_models ships weights for it (the JSON
    :func:`publish` wrote beside them), else None. Model files put it in ``default_cfgs``."""
    import json

    card = PACKAGE_WEIGHTS / f"{name}.json"
    if not card.is_file():
        return None
    return {"source": "package", **json.loads(card.read_text())}


def publish(name: str, model: nn.Module, card: dict[str, Any], out: str | os.PathLike | None = None) -> Path:
    """Ship ``model``'s weights as ``<out>/<name>.pt`` (a bare state dict: loads with ``weights_only``)
    with ``<out>/<name>.json``: ``card`` (classes, mean, std, input_size, provenance) + ``file`` and
    ``sha256``. ``out`` defaults to :data:`PACKAGE_WEIGHTS`. Returns the weights file."""
    import json

    out = Path(out) if out is not None else PACKAGE_WEIGHTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.pt"
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()  # saved through a buffer: a file's zip would be named after the temporary
    torch.save(state, buffer)  # file, so the same weights would hash differently at every publish
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    entry = {**card, "file": path.name, "sha256": _sha256(path)}
    (out / f"{name}.json").write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    return path
