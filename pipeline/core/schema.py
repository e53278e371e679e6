"""The params.yaml schema: every knob's type and range, and no key that nothing reads.

:func:`validate` checks a whole params mapping (the file, a profile's result) against the pydantic
models below and raises :class:`ParamsError` with one line naming the file, the key path and the
problem — with a "did you mean" for a misspelt key, since an unknown key is never ignored.
Per-dataset (and per-model) sections are checked entry by entry as the stages read them:
``defaults`` deep-merged with the entry, a mistake reported at the key where it was written.
Sections a file does not have are not required here (the stage that needs one says so).
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

DATASETS = ("fer2013", "ckplus", "jaffe", "rafdb", "kdef")

PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
# mixed precision of training; YAML reads a bare `off` as false, which means off too
AmpMode = Annotated[Literal["off", "bf16", "fp16"], BeforeValidator(lambda v: "off" if v is False else v)]


#: old key -> new key, for a one-line error that names the new one
RENAMED = {"size": "px"}
#: keys a section no longer holds -> where they live now (one setting for every stage)
MOVED = {"device": "the top-level key `device` (one device for every stage; a stage's --device overrides it)"}


class ParamsError(ValueError):
    """A params mistake: one line naming the file and the key."""


def deep_merge(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """A new dict: ``base`` with ``override`` merged in, recursively for nested mappings. The
    layering rule of every per-dataset / per-model section (``defaults``, then the entry, then a
    recipe's ``datasets.<name>``), for the checks here and for the stages that read the values."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


#: the device names the top-level ``device`` key (and a stage's ``--device``) may hold
DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device_name(name: object) -> str | None:
    """``None`` when ``name`` is a device name (syntax only: :mod:`pipeline.core.device` checks that
    this machine has it), else why not."""
    if not isinstance(name, str) or not _DEVICE_PATTERN.fullmatch(name):
        return f"expected {DEVICE_NAMES}, got {name!r}"
    return None


class Knobs(BaseModel):
    """A mapping of knobs: unknown keys are errors, values keep their YAML type (``"96"`` is no int)."""

    model_config = ConfigDict(extra="forbid", strict=True)


# --- data stages -------------------------------------------------------------------------------
class Sample(Knobs):
    per_class: PosInt = 12
    seed: NonNegInt = 0


class Ingest(Knobs):
    chunk_size: PosInt = 256
    window_chunks: PosInt = 16
    window_bytes: PosInt = 256 << 20
    chunk_bytes: PosInt = 64 << 20
    drop_duplicates: bool = True
    png_level: Annotated[int, Field(ge=0, le=9)] = 3
    max_pixels: PosInt = 50_000_000
    max_side: PosInt = 2048


class IngestFer2013(Ingest):
    file: Literal["auto", "fer2013.csv", "icml_face_data.csv", "train.csv", "folders"] = "auto"


class IngestCkplus(Ingest):
    peak_frames: PosInt = 3
    neutral_frames: NonNegInt = 1


class IngestRafdb(Ingest):
    variant: Literal["aligned", "original"] = "aligned"


class IngestKdef(Ingest):
    angles: Annotated[list[Literal["FL", "HL", "S", "HR", "FR"]], Field(min_length=1)] = ["FL", "HL", "S", "HR", "FR"]


INGEST = {"fer2013": IngestFer2013, "ckplus": IngestCkplus, "jaffe": Ingest, "rafdb": IngestRafdb, "kdef": IngestKdef}


class Detection(Knobs):
    max_side: NonNegInt = 320
    min_side: NonNegInt = 0
    pad: Fraction = 0.0
    min_face_size: Annotated[int, Field(ge=12)] = 20
    factor: Annotated[float, Field(ge=0.3, lt=1)] = 0.709
    thresholds: Annotated[list[Fraction], Field(min_length=3, max_length=3)] = [0.6, 0.7, 0.7]
    batch_size: PosInt = 16


class ContactSheet(Knobs):
    n: PosInt = 36
    tile: PosInt = 64
    seed: NonNegInt = 0


class Align(Knobs):
    policy: Literal["detect", "precropped"] = "detect"
    precropped_max_side: NonNegInt = 0
    verify: bool = False
    fallback: list[Literal["redetect", "centre_crop"]] = []
    px: PosInt = 112
    colour: Literal["grey", "rgb"] = "rgb"
    margin: NonNegFloat = 0.25
    interpolation: Literal["nearest", "linear", "cubic", "area", "lanczos"] = "area"
    border: Literal["replicate", "reflect", "constant"] = "replicate"
    centre_crop: Annotated[float, Field(gt=0, le=1)] = 0.8
    min_input_side: PosInt = 16
    threads: NonNegInt = 1
    chunk_rows: PosInt = 128
    detection: Detection = Detection()
    redetect: Detection = Detection()
    contact_sheet: ContactSheet = ContactSheet()


class Ratios(Knobs):
    train: Fraction = 0.7
    validation: Fraction = 0.2
    test: Fraction = 0.1


class Split(Knobs):
    protocol: Literal["source", "kfold", "ratio"] = "ratio"
    seed: NonNegInt = 0
    ratios: Ratios = Ratios()
    k: Annotated[int, Field(ge=2)] = 10
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0
    source_map: dict[str, Literal["train", "validation", "test"]] = {}


class Balance(Knobs):
    method: Literal["none", "oversample", "undersample", "target_per_class"] = "none"
    target: PosInt | None = None
    seed: NonNegInt = 0


class Augment(Knobs):
    preset: str = "none"
    factor: PosInt = 1
    seed: NonNegInt = 0
    presets: dict[str, list[dict[str, Any]]] = {}  # albumentations arguments: checked by the shard stage


class Shard(Knobs):
    shard_mb: PosFloat = 256
    row_group_kb: PosFloat = 1024
    compression_level: Annotated[int, Field(ge=1, le=22)] = 3
    chunk_rows: PosInt = 512
    window_chunks: PosInt = 8
    png_compression: Annotated[int, Field(ge=0, le=9)] = 6


# --- models --------------------------------------------------------------------------------------
class Input(Knobs):
    px: PosInt = 48
    resize: PosInt = 48
    channels: Literal[1, 3] = 1
    mean: list[float] = [0.5]
    std: list[PosFloat] = [0.5]
    equalize: bool = False


class RecipeAugment(Knobs):
    crop: Literal["five", "random", "center", "none"] = "none"
    flip: Fraction = 0.0
    rotation: NonNegFloat = 0.0
    erasing: Fraction = 0.0
    scale: Annotated[list[PosFloat], Field(min_length=2, max_length=2)] | None = None
    translate: Fraction = 0.0
    brightness: NonNegFloat = 0.0
    contrast: NonNegFloat = 0.0
    mixup: NonNegFloat = 0.0


class Optimizer(Knobs):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: PosFloat = 1e-3
    weight_decay: NonNegFloat = 0.0
    momentum: Fraction = 0.9


class Scheduler(Knobs):
    name: Literal["none", "plateau", "cosine", "step"] = "none"
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.9
    patience: NonNegInt = 2  # plateau
    monitor: Literal["train_loss", "val_loss", "val_acc"] = "train_loss"  # plateau
    start: NonNegInt = 0  # step: lr × factor every `every` epochs counted from epoch `start`
    every: PosInt = 1


class Loss(Knobs):
    name: Literal["model", "ce"] = "model"
    margin: NonNegFloat = 0.35
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0


class Teacher(Knobs):
    model: str
    alpha: Fraction
    temperature: PosFloat


class Recipe(Knobs):
    arch: str | None = None
    seed: NonNegInt = 0
    deterministic: bool = True
    channels_last: bool = False
    amp: AmpMode = "off"
    num_workers: NonNegInt = 0
    epochs: PosInt = 10
    batch_size: PosInt = 32
    input: Input = Input()
    augment: RecipeAugment = RecipeAugment()
    optimizer: Optimizer = Optimizer()
    scheduler: Scheduler = Scheduler()
    loss: Loss = Loss()
    teacher: Teacher | None = None
    init: Literal["pretrained"] | None = None
    weights: str | None = None  # a state dict file to start from (DVC-tracked under data/weights/)
    ema: Annotated[float, Field(ge=0, lt=1)] = 0.0
    model_args: dict[str, Any] = {}  # the network's own keyword arguments: checked by fer_models
    derived_rows: bool = True
    datasets: dict[str, dict[str, Any]] = {}  # per-dataset overrides: each checked as a whole recipe


class Run(Knobs):
    model: str
    dataset: str


class Pretrain(Knobs):
    classes: Annotated[list[str], Field(min_length=2)] = []
    per_class: PosInt = 200
    validation_per_class: PosInt = 25
    frames: PosInt = 3
    render: PosInt = 64
    box: Annotated[list[Fraction], Field(min_length=4, max_length=4)] = [0.125, 0.2, 0.875, 0.95]
    epochs: PosInt = 15
    seed: NonNegInt = 7


class Transfer(Knobs):
    source: str
    rows: PosInt = 2000


class Distill(Knobs):
    teacher: str = "ean"
    co_teachers: list[str] = []
    transfer: Transfer | None = None
    alpha: Fraction = 0.5
    temperature: PosFloat = 5.0
    max_rounds: PosInt = 2
    patience: PosInt = 1
    min_delta: NonNegFloat = 0.0
    weight_transfer: bool = True
    ema: Annotated[float, Field(ge=0, lt=1)] = 0.0
    epochs: PosInt = 6
    batch_size: PosInt | None = None
    seed: NonNegInt | None = None
    optimizer: Optimizer = Optimizer()
    scheduler: Scheduler = Scheduler()


class Latency(Knobs):
    runs: NonNegInt = 200
    threads: PosInt = 1


class Evaluate(Knobs):
    matrix: dict[str, Run] = {}
    batch_size: PosInt = 64
    ten_crop: bool = False
    onnx_tolerance: PosFloat = 1e-3
    latency: Latency = Latency()


class Cv(Knobs):
    models: list[str] = []
    distill: bool = False
    validation_fold: bool = False
    ten_crop: bool = True
    folds: Union[Literal["all"], list[NonNegInt]] = "all"
    workers: PosInt = 1


class Report(Knobs):
    eval_dir: str = "eval"


class Runner(Knobs):
    kind: Literal["threads", "dask"] = "threads"
    max_workers: PosInt = 2
    address: str | None = None
    n_workers: PosInt = 2


class Flow(Knobs):
    runner: Runner = Runner()
    retries: NonNegInt = 2
    retry_delay_seconds: NonNegFloat = 1.0


# section -> (model of one merged entry, the entries beside `defaults` that are not datasets)
PER_DATASET: dict[str, Any] = {"sample": Sample, "ingest": INGEST, "align": Align, "split": Split,
                               "balance": Balance, "augment": Augment, "shard": Shard}
EXTRA_ENTRIES = {"align": ("photos", "video")}  # `predict`'s photographs and video frames
LISTS = {"pretrain": ("models",), "distill": ("datasets",), "cv": ("datasets",), "train": ("matrix",),
         "evaluate": ("matrix",)}
#: one-name keys beside a section's entries: a processed dataset of `datasets`, or the words allowed
NAMES = {("pretrain", "source"): ("synthetic",)}
PLAIN: dict[str, type[Knobs]] = {"evaluate": Evaluate, "report": Report, "flow": Flow}
PER_ENTRY: dict[str, type[Knobs]] = {"pretrain": Pretrain, "train": Recipe, "distill": Distill, "cv": Cv}
TOP = ("profile", "device", "datasets", *PER_DATASET, *PLAIN, *PER_ENTRY)


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model of the mapping at ``loc`` inside ``model`` (for the keys it knows)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        inner = field.annotation
        candidates = getattr(inner, "__args__", (inner,))
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def _check(model: type[BaseModel], value: Any, where: str, written: dict[str, Any] | None = None,
           fallback: str | None = None) -> None:
    """Validate ``value`` with ``model``; the first error becomes a ParamsError naming the key, at
    ``where`` when ``written`` (the override as written) holds it, else at ``fallback`` (defaults)."""
    try:
        model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        keys = tuple(p for p in loc if isinstance(p, str))
        here = where
        if fallback is not None:
            node: Any = written or {}
            for k in keys:
                node = node.get(k) if isinstance(node, dict) else None
            here = where if node is not None else fallback
        path = ".".join([here, *map(str, loc)])
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            known = parent.model_fields if parent is not None else ()
            if loc[-1] in RENAMED and RENAMED[loc[-1]] in known:
                new = ".".join([here, *map(str, loc[:-1]), RENAMED[loc[-1]]])
                raise ParamsError(f"{path}: renamed to {new} (DVC's run-cache ignores keys named "
                                  f"{loc[-1]!r}, treeverse/dvc#10296)") from None
            if len(loc) == 1 and loc[0] in MOVED:
                raise ParamsError(f"{path}: moved to {MOVED[loc[0]]}") from None
            raise ParamsError(f"{path}: unknown key{_suggest(loc[-1], known)}") from None
        if err["type"] == "missing":
            raise ParamsError(f"{path}: required") from None
        raise ParamsError(f"{path}: {err['msg'][0].lower()}{err['msg'][1:]}, got {err['input']!r}") from None


def _entries(params: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    sec = params.get(name) or {}
    if not isinstance(sec, dict):
        raise ParamsError(f"{name}: expected a mapping, got {sec!r}")
    defaults = sec.get("defaults") or {}
    return sec, defaults


def _check_per_dataset(params: dict[str, Any], name: str) -> None:
    sec, defaults = _entries(params, name)
    allowed = [*DATASETS, *EXTRA_ENTRIES.get(name, ())]  # entries of datasets a profile leaves out stay
    models = PER_DATASET[name]
    for key, entry in sec.items():
        if key == "defaults":
            continue
        if key not in allowed:
            raise ParamsError(f"{name}.{key}: not a dataset{_suggest(key, allowed)}")
        if entry is not None and not isinstance(entry, dict):
            raise ParamsError(f"{name}.{key}: expected a mapping of overrides, got {entry!r}")
    for key in [k for k in allowed if k in sec] or [None]:
        model = models.get(key, models["jaffe"]) if isinstance(models, dict) else models
        entry = sec.get(key) or {} if key else {}
        _check(model, deep_merge(defaults, entry), f"{name}.{key}" if key else f"{name}.defaults", entry,
               f"{name}.defaults")


def _check_per_entry(params: dict[str, Any], name: str) -> None:
    sec, defaults = _entries(params, name)
    model = PER_ENTRY[name]
    for key, entry in sec.items():
        if key in LISTS.get(name, ()) or (name, key) in NAMES or key == "defaults":
            continue
        if not isinstance(entry, dict):
            raise ParamsError(f"{name}.{key}: expected a mapping, got {entry!r}")
        merged = deep_merge(defaults, entry)
        _check(model, merged, f"{name}.{key}", entry, f"{name}.defaults")
        if name == "train":
            _check_start(merged, f"{name}.{key}")
        for ds, override in (merged.get("datasets") or {}).items() if name == "train" else ():
            _check(model, deep_merge(merged, override), f"{name}.{key}.datasets.{ds}", override, f"{name}.{key}")
            _check_start(deep_merge(merged, override), f"{name}.{key}.datasets.{ds}")
    if "defaults" in sec:
        _check(model, defaults, f"{name}.defaults")


def _check_start(recipe: dict[str, Any], where: str) -> None:
    """A recipe starts from one place: its ``weights`` file or stage pretrain's weights (``init``), and
    names a weights file only in ``weights`` (a checkpoint then holds all weights and needs no file)."""
    args = recipe.get("model_args") or {}
    for key in ("pretrained_path", "pretrained"):
        if isinstance(args.get(key), str):
            raise ParamsError(f"{where}.model_args.{key}: moved to {where}.weights (a state dict file under "
                              f"data/weights/, a DVC-tracked input)")
    if recipe.get("init") and recipe.get("weights"):
        raise ParamsError(f"{where}: init: {recipe['init']} and weights: {recipe['weights']} are two starting "
                          f"points; set one")


def _check_lists(params: dict[str, Any], datasets: list[str]) -> None:
    for (name, key), words in NAMES.items():
        value = (params.get(name) or {}).get(key, words[0])
        if value not in (*words, *datasets):
            raise ParamsError(f"{name}.{key}: {value!r} is neither {' nor '.join(words)} nor a dataset of `datasets`"
                              f"{_suggest(value, [*words, *datasets])}")
    for name, keys in LISTS.items():
        sec = params.get(name) or {}
        for key in keys:
            if key not in sec:
                continue
            value = sec[key]
            if key == "matrix":
                _check(Evaluate, {"matrix": value}, name)
                runs = value.values()
            elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ParamsError(f"{name}.{key}: expected a list of names, got {value!r}")
            else:
                runs = [{"dataset": v} for v in value] if key == "datasets" else []
            for run in runs:
                if run["dataset"] not in datasets:
                    raise ParamsError(f"{name}.{key}: dataset {run['dataset']!r} is not in `datasets`"
                                      f"{_suggest(run['dataset'], datasets)}")


def validate(params: dict[str, Any], source: str | Path = "params.yaml") -> None:
    """Raise :class:`ParamsError` (one line: ``<source>: <key path>: <problem>``) unless ``params``
    follows the schema."""
    try:
        for key in params:
            if key not in TOP:
                raise ParamsError(f"{key}: unknown section{_suggest(key, TOP)}")
        if "device" in params and check_device_name(params["device"]) is not None:
            raise ParamsError(f"device: {check_device_name(params['device'])}")
        datasets = params.get("datasets", list(DATASETS))
        if not isinstance(datasets, list) or not set(datasets) <= set(DATASETS):
            raise ParamsError(f"datasets: expected a list of {', '.join(DATASETS)}, got {datasets!r}")
        for name in PER_DATASET:
            if name in params:
                _check_per_dataset(params, name)
        for name, model in PLAIN.items():
            if name in params:
                _check(model, params[name] or {}, name)
        for name in PER_ENTRY:
            if name in params:
                _check_per_entry(params, name)
        _check_lists(params, datasets)
    except ParamsError as exc:
        raise ParamsError(f"{source}: {exc}") from None
