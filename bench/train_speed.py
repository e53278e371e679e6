"""Training throughput: the step of every zoo model, and EAN's whole training loop lever by lever.

    .venv/bin/python bench/train_speed.py [--threads 2] [--seconds 3] [--batch 32] [--device auto]
    .venv/bin/python bench/train_speed.py --loop [--images 2048] [--repeats 3] [--variants ...]
    .venv/bin/python bench/train_speed.py --accuracy [--faces ../shared/realdata/fer2013-folders]

**Step table** (default): for each model, at its recipe's input and knobs in ``params.yaml``, the
time of a full training step (forward, cross-entropy, backward, Adam step) on random inputs, in the
default contiguous layout and in ``channels_last``, measured alternately in one process; prints
ms/image and the ratio (the recipe knob ``train.defaults.channels_last``). Deterministic algorithms
on, as in training. With ``--device cuda`` (or ``auto`` on a machine with a GPU) the table is
images/s on the GPU in float32 and under autocast fp16 (with a GradScaler) and bf16, and the
ratios, alternately in one process (the recipe knob ``amp``); without a GPU it says so in one line.

**Loop** (``--loop``): EAN's real training loop, :func:`pipeline.training.loop._train_epoch` over a
:class:`~pipeline.shards.dataset.ShardDataset` of ``--images`` generated 48x48 grey faces (written
with the one ``ShardWriter``) through paper 004's recipe: 44 px crops of 48, 3 channels, five-crop
+ flip, batch 128, SGD lr 0.01 momentum 0.9 weight decay 5e-4, channels_last, ``--threads``. Each
variant is a set of levers:

- ``batch``: the recipe's transform applied to whole batches (``BatchableCompose``, bit-identical
  results) instead of image by image through torchvision v2;
- ``memory``: freed memory kept for reuse (``keep_freed_memory``; no result changes);
- ``nofill``: deterministic algorithms without filling every new tensor with NaN first
  (``torch.utils.deterministic.fill_uninitialized_memory`` off; no result changes);
- ``compile``: ``torch.compile`` of the model (rounding changes; not a recipe knob: it measured
  no faster, docs/bench.md);
- ``bf16``: CPU bf16 autocast (recipe knob ``amp: bf16``; rounding changes);
- ``nondet``: ``torch.use_deterministic_algorithms`` off; ``threads1``: one torch thread;
- ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (OpenMP threads sleep instead of spinning between
  parallel regions; on a busy machine spinning threads take the cores their partners need).

``before`` (no lever) is the loop as it was before these levers. Each variant runs in a fresh
process (the allocator setting is per process), one warm-up epoch (decoding, compiling) and then
``--epochs`` timed epochs (their median); variants alternate, ``--repeats`` times, and the table
gives the median images/s per variant and its ratio to ``before`` from the same run, and the CPU
time per image (all threads; less sensitive than wall time to other load on a shared machine).

**Accuracy** (``--accuracy``): whether a lever that changes the rounding changes what EAN learns:
:func:`pipeline.training.loop.fit` for ``--epochs`` epochs on ``--train`` faces, test accuracy on
``--test`` other faces, per ``--seeds`` seed and variant (``--variants``, e.g. ``fp32 bf16``);
faces from ``--faces`` (a FER2013 image-folder copy, read in place, never copied into the
repository) or generated. Prints each accuracy and the mean ± std over seeds.

Recorded figures: docs/bench.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the drawn-face fixture (crops_fixture.draw_face)

from fer_models import create_model  # noqa: E402

MODELS = ["ean", "resatt", "dnn_cbam", "erfnet_att", "dfnet"]
LEVERS = ("batch", "memory", "nofill", "compile", "bf16", "nondet", "threads1", "passive")
#: the levers one by one, all that keep the results (the loop now), and the opt-in ones on top
LOOP_VARIANTS = ["before", "batch", "memory", "nofill", "batch+memory+nofill", "batch+memory+nofill+bf16",
                 "batch+memory+nofill+compile"]
#: paper 004's EAN recipe (the fer2013 profile's), as the loop bench trains it
EAN_RECIPE = {"input": {"px": 44, "resize": 48, "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3},
              "augment": {"crop": "five", "flip": 0.5}, "batch_size": 128,
              "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}}
FOLDER_CLASSES = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
                  "neutral": "neutral", "sad": "sadness", "surprise": "surprise"}


def demo_configs(params_file: str | None = None) -> list[tuple[str, int, int, dict]]:
    """``(network, in_chans, input size, model_args)`` of each model's recipe in params.yaml."""
    from pipeline.training.recipe import load_recipe
    from pipeline.training.transforms import input_px

    out = []
    for name in MODELS:
        recipe = load_recipe("train", name, params_file)
        spec = recipe["input"]
        out.append((recipe.get("arch") or name, int(spec["channels"]), input_px(spec),
                    dict(recipe.get("model_args") or {})))
    return out


def ms_per_image(name: str, chans: int, size: int, args: dict, channels_last: bool, batch: int,
                 seconds: float) -> float:
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(name, num_classes=7, in_chans=chans, **args).to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(batch, chans, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 7, (batch,))

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step(), step()  # warm-up
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        step()
        n += batch
    return (time.perf_counter() - t0) / n * 1000


def step_table(args) -> None:
    print(f"{'model':<11} {'NCHW ms/img':>12} {'NHWC ms/img':>12} {'ratio':>6}")
    for name, chans, size, margs in demo_configs(args.params):
        nchw = ms_per_image(name, chans, size, margs, False, args.batch, args.seconds)
        nhwc = ms_per_image(name, chans, size, margs, True, args.batch, args.seconds)
        print(f"{name:<11} {nchw:>12.2f} {nhwc:>12.2f} {nchw / nhwc:>5.2f}x")


def gpu_amp_table(args, device: torch.device) -> None:
    """Per model: training-step images/s on the GPU in float32, fp16 (GradScaler) and bf16 autocast,
    alternately in blocks of ``--seconds`` / 3, ``--repeats`` rounds; medians and ratios to float32."""
    print(f"{'model':<11} {'fp32 img/s':>11} {'fp16 img/s':>11} {'bf16 img/s':>11} {'fp16':>6} {'bf16':>6}"
          f"   ({torch.cuda.get_device_name(device)}, batch {args.batch})")
    modes = ["fp32", "fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    for name, chans, size, margs in demo_configs(args.params):
        steps = {}
        for mode in modes:
            torch.manual_seed(0)
            model = create_model(name, num_classes=7, in_chans=chans, **margs).to(device, memory_format=torch.channels_last)
            opt = torch.optim.Adam(model.parameters(), 1e-3)
            scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None
            dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mode)
            x = torch.randn(args.batch, chans, size, size, device=device).contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 7, (args.batch,), device=device)

            def step(model=model, opt=opt, scaler=scaler, dtype=dtype, x=x, y=y) -> None:
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                if scaler is None:
                    loss.backward()
                    opt.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()

            for _ in range(3):
                step()
            steps[mode] = step
        rates = {m: [] for m in modes}
        for _ in range(args.repeats):
            for mode in modes:
                torch.cuda.synchronize(device)
                t0, n = time.perf_counter(), 0
                while time.perf_counter() - t0 < args.seconds / 3:
                    steps[mode]()
                    n += args.batch
                torch.cuda.synchronize(device)
                rates[mode].append(n / (time.perf_counter() - t0))
        med = {m: statistics.median(r) for m, r in rates.items()}
        bf16 = med.get("bf16", float("nan"))
        print(f"{name:<11} {med['fp32']:>11.0f} {med['fp16']:>11.0f} {bf16:>11.0f} "
              f"{med['fp16'] / med['fp32']:>5.2f}x {bf16 / med['fp32']:>5.2f}x")


# --- the whole loop --------------------------------------------------------------------------------
def write_faces(out: Path, split: str, faces: list[tuple[int, bytes]], prefix: str) -> None:
    """``faces`` (unified label, PNG bytes) as shards of ``split`` under ``out``, with the one writer."""
    from pipeline.core.labels import LABEL_NAMES
    from pipeline.shards.format import ShardWriter, rows_to_table

    out.mkdir(parents=True, exist_ok=True)
    rows = [{"image": data, "label": label, "label_name": LABEL_NAMES[label], "dataset": "bench", "subject": None,
             "split": split, "fold": -1, "image_id": f"{prefix}/{i:06d}", "parent_id": None, "augmentation": None}
            for i, (label, data) in enumerate(faces)]
    writer = ShardWriter(out, split)
    writer.write(rows_to_table(rows))
    writer.close()


def generated_faces(n: int, offset: int = 0) -> list[tuple[int, bytes]]:
    """``n`` drawn 48x48 grey faces whose mouth depends on the label (tests/crops_fixture.py)."""
    from crops_fixture import draw_face, png

    labels = [1, 3, 4, 5, 6, 7, 0]
    return [(labels[i % 7], png(draw_face(labels[i % 7], i, 48, 1))) for i in range(offset, offset + n)]


def loop_child(args) -> None:
    """One variant in this process: a warm-up epoch, then ``--epochs`` timed; prints JSON."""
    levers = set() if args.child == "before" else set(args.child.split("+"))
    unknown = levers - set(LEVERS)
    if unknown:
        raise SystemExit(f"unknown lever(s) {sorted(unknown)}; known: {', '.join(LEVERS)}")
    torch.set_num_threads(1 if "threads1" in levers else args.threads)
    from torchvision.transforms import v2

    from pipeline.shards.dataset import ShardDataset
    from pipeline.training.data import make_loader, with_transform
    from pipeline.training.losses import make_loss_fn
    from pipeline.training.loop import _train_epoch, keep_freed_memory
    from pipeline.training.optim import build_optimizer
    from pipeline.training.recipe import seed_everything
    from pipeline.training.transforms import train_transform

    if "memory" in levers:
        keep_freed_memory()
    device = torch.device(args.device_resolved)
    generator = seed_everything(0, "nondet" not in levers)
    torch.utils.deterministic.fill_uninitialized_memory = "nofill" not in levers
    transform = train_transform(EAN_RECIPE)
    if "batch" not in levers:
        transform = v2.Compose(list(transform.transforms))  # the same steps, image by image
    ds = with_transform(ShardDataset(args.shards, "train", size=None), 3, transform)
    loader = make_loader(ds, EAN_RECIPE["batch_size"], shuffle=True, generator=generator)
    model = create_model("ean", num_classes=len(ds.classes), in_chans=3).to(device, memory_format=torch.channels_last)
    optimizer = build_optimizer(EAN_RECIPE["optimizer"], model.parameters())
    loss_fn = make_loss_fn(torch.nn.functional.cross_entropy)
    amp = torch.bfloat16 if "bf16" in levers else None
    stepped = torch.compile(model, dynamic=False) if "compile" in levers else model  # shares the weights
    import resource

    rates, cpu, faults = [], [], []
    for epoch in range(1 + args.epochs):
        started, cpu_started = time.perf_counter(), time.process_time()
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        _train_epoch(stepped, loader, loss_fn, optimizer, device, torch.channels_last, amp=amp)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if epoch:  # the first epoch decodes the images and compiles
            rates.append(len(ds) / (time.perf_counter() - started))
            cpu.append((time.process_time() - cpu_started) / len(ds) * 1000)
            faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / len(loader))
    print(json.dumps({"variant": args.child, "images_per_second": rates, "cpu_ms_per_image": cpu,
                      "page_faults_per_step": faults}))


def loop_table(args) -> None:
    variants = args.variants or LOOP_VARIANTS
    if "before" not in variants:
        variants = ["before", *variants]
    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        shards = Path(tmp) / "shards"
        write_faces(shards, "train", generated_faces(args.images), "bench")
        rates: dict[str, list[float]] = {v: [] for v in variants}
        cpu: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(args.repeats):
            order = variants[r % len(variants):] + variants[:r % len(variants)]  # alternate the order
            for variant in order:
                cmd = [sys.executable, __file__, "--child", variant, "--shards", str(shards), "--threads",
                       str(args.threads), "--epochs", str(args.epochs), "--device", args.device_resolved]
                env = dict(os.environ)
                if "passive" in variant.split("+"):
                    env["OMP_WAIT_POLICY"] = "PASSIVE"  # read when the OpenMP runtime loads
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
                if done.returncode:
                    raise SystemExit(f"{variant}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                rates[variant].append(statistics.median(result["images_per_second"]))
                cpu[variant].append(statistics.median(result["cpu_ms_per_image"]))
                print(f"  repeat {r + 1} {variant:<28} {rates[variant][-1]:7.0f} images/s "
                      f"{cpu[variant][-1]:6.2f} CPU ms/image "
                      f"{statistics.median(result['page_faults_per_step']):8.0f} page faults/step",
                      file=sys.stderr, flush=True)
    base, base_cpu = statistics.median(rates["before"]), statistics.median(cpu["before"])
    print(f"EAN training loop, {args.images} generated faces, batch 128, 3x44x44 crops of 48, {args.threads} "
          f"threads, {args.device_resolved}; median of {args.repeats} runs x {args.epochs} epochs")
    print(f"{'variant':<28} {'images/s':>9} {'ratio':>7} {'CPU ms/img':>11} {'ratio':>7}   runs (images/s)")
    for variant in variants:
        med, med_cpu = statistics.median(rates[variant]), statistics.median(cpu[variant])
        runs = " ".join(f"{v:.0f}" for v in rates[variant])
        print(f"{variant:<28} {med:>9.0f} {med / base:>6.2f}x {med_cpu:>11.2f} {base_cpu / med_cpu:>6.2f}x   {runs}")


# --- accuracy under a lever --------------------------------------------------------------------------
def folder_faces(root: Path, part: str, n: int, skip: int = 0) -> list[tuple[int, bytes]]:
    """``n`` faces of ``root/part/<class>/*`` (every k-th file in name order, from ``skip``), as PNG."""
    import cv2

    from pipeline.core.labels import LABEL_INDEX

    files = sorted((p for p in (root / part).glob("*/*") if p.parent.name in FOLDER_CLASSES),
                   key=lambda p: (p.parent.name, p.name))
    if not files:
        raise SystemExit(f"{root / part}: no images in class folders ({', '.join(FOLDER_CLASSES)})")
    step = max(1, len(files) // (n + skip))
    chosen = files[skip::step][:n]
    out = []
    for path in chosen:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        out.append((LABEL_INDEX[FOLDER_CLASSES[path.parent.name]], cv2.imencode(".png", img)[1].tobytes()))
    return out


def accuracy_table(args) -> None:
    from pipeline.shards.dataset import ShardDataset
    from pipeline.training.data import make_loader, with_transform
    from pipeline.training.losses import make_loss_fn
    from pipeline.training.loop import fit, predict_proba
    from pipeline.training.optim import build_optimizer
    from pipeline.training.recipe import seed_everything
    from pipeline.training.transforms import eval_transform, train_transform

    torch.set_num_threads(args.threads)
    variants = args.variants or ["fp32", "bf16"]
    with tempfile.TemporaryDirectory(prefix="train-accuracy-") as tmp:
        root = Path(tmp) / "shards"
        if args.faces:
            faces = Path(args.faces)
            write_faces(root, "train", folder_faces(faces, "train", args.train), "train")
            write_faces(root, "test", folder_faces(faces, "test", args.test), "test")
            source = f"{args.faces} ({args.train} train / {args.test} test faces)"
        else:
            write_faces(root, "train", generated_faces(args.train), "train")
            write_faces(root, "test", generated_faces(args.test, offset=args.train), "test")
            source = f"generated faces ({args.train} train / {args.test} test)"
        train = ShardDataset(root, "train", size=None)
        test = ShardDataset(root, "test", size=None, classes=train.classes)
        results: dict[str, list[float]] = {v: [] for v in variants}
        for seed in args.seeds:
            for variant in variants:
                levers = set(variant.split("+")) - {"fp32"}
                generator = seed_everything(seed)
                loader = make_loader(with_transform(train, 3, train_transform(EAN_RECIPE)), 128, shuffle=True,
                                     generator=generator)
                model = create_model("ean", num_classes=len(train.classes), in_chans=3)
                optimizer = build_optimizer(EAN_RECIPE["optimizer"], model.parameters())
                started = time.perf_counter()
                fit(model, make_loss_fn(torch.nn.functional.cross_entropy), optimizer, None, loader, None,
                    epochs=args.epochs, device=torch.device("cpu"), run_dir=Path(tmp) / f"{variant}-{seed}",
                    run_key=f"{variant}-{seed}", generator=generator, channels_last=True,
                    amp="bf16" if "bf16" in levers else "off")
                seconds = time.perf_counter() - started
                scored = with_transform(test, 3, eval_transform(EAN_RECIPE))
                probs, labels = predict_proba(model, make_loader(scored, 256, shuffle=False), torch.device("cpu"))
                results[variant].append(float((probs.argmax(1) == labels).mean()))
                print(f"  seed {seed} {variant:<14} test accuracy {results[variant][-1]:.4f} ({seconds:.0f} s)",
                      file=sys.stderr, flush=True)
    print(f"EAN, {args.epochs} epochs, {source}, seeds {' '.join(map(str, args.seeds))}")
    print(f"{'variant':<14} {'mean':>7} {'std':>6}   per seed")
    for variant in variants:
        acc = results[variant]
        std = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(f"{variant:<14} {statistics.mean(acc):>7.4f} {std:>6.4f}   {' '.join(f'{a:.4f}' for a in acc)}")


def resolve(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per model and layout")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--params", default=None, help="params file of the recipes (default: params.yaml)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--loop", action="store_true", help="EAN's whole training loop, lever by lever")
    parser.add_argument("--accuracy", action="store_true", help="test accuracy of EAN per seed and variant")
    parser.add_argument("--images", type=int, default=2048, help="--loop: generated faces per epoch")
    parser.add_argument("--epochs", type=int, default=None, help="--loop: timed epochs per run (2); "
                        "--accuracy: training epochs (8)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every variant (GPU table: rounds)")
    parser.add_argument("--variants", nargs="+", default=None,
                        help=f"--loop: '+'-joined levers of {', '.join(LEVERS)} (or 'before'); "
                             "--accuracy: fp32, bf16")
    parser.add_argument("--faces", default=None, help="--accuracy: a FER2013 image-folder root (train/, test/)")
    parser.add_argument("--train", type=int, default=3000, help="--accuracy: training faces")
    parser.add_argument("--test", type=int, default=1000, help="--accuracy: test faces")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--shards", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.device_resolved = resolve(args.device)
    if args.device_resolved == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing to measure for --device cuda")
        return 0
    if args.child:
        args.epochs = 2 if args.epochs is None else args.epochs
        loop_child(args)
        return 0
    torch.set_num_threads(args.threads)
    if args.loop:
        args.epochs = 2 if args.epochs is None else args.epochs
        loop_table(args)
    elif args.accuracy:
        args.epochs = 8 if args.epochs is None else args.epochs
        accuracy_table(args)  # fit's runs are deterministic through seed_everything
    else:
        torch.use_deterministic_algorithms(True)  # as in training
        if args.device_resolved == "cuda":
            gpu_amp_table(args, torch.device("cuda"))
        else:
            if args.device == "auto":
                print("no CUDA GPU on this machine: the float32 vs AMP table needs one; NCHW vs channels_last on the CPU:")
            step_table(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
