"""Training-step throughput of every zoo model at its demo input, NCHW vs channels_last (NHWC).

    .venv/bin/python bench/train_speed.py [--threads 2] [--seconds 3] [--batch 32]

For each model, at its recipe's input and knobs in ``params.yaml``: the time of a full training
step (forward, cross-entropy, backward, Adam step) on random inputs, in the default contiguous layout and in ``channels_last``, measured
alternately in one process; prints ms/image and the ratio (the recipe knob
``train.defaults.channels_last``). Deterministic algorithms are on, as in training.

Recorded ratios per model: docs/bench.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from fer_models import create_model

MODELS = ["ean", "resatt", "dnn_cbam", "erfnet_att", "dfnet"]


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per model and layout")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--params", default=None, help="params file of the recipes (default: params.yaml)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    print(f"{'model':<11} {'NCHW ms/img':>12} {'NHWC ms/img':>12} {'ratio':>6}")
    for name, chans, size, margs in demo_configs(args.params):
        nchw = ms_per_image(name, chans, size, margs, False, args.batch, args.seconds)
        nhwc = ms_per_image(name, chans, size, margs, True, args.batch, args.seconds)
        print(f"{name:<11} {nchw:>12.2f} {nhwc:>12.2f} {nchw / nhwc:>5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
