"""Benchmark: ONNX Runtime CPU latency per frame of the zoo's models, as ratios against MobileNetV2.

Every model is exported to ONNX and timed at batch 1 (median of ``--runs`` calls, one intra-op
thread) in alternating blocks with a randomly initialised torchvision MobileNetV2 at the same
input, in the same process; the figure is the ratio MobileNetV2 ms / model ms (> 1: faster).
EAN at 44x44 is the paper's claim (paper 004, Table 5; the figure: docs/bench.md).

    .venv/bin/python bench/latency.py                 # EAN at 3x44x44 and 1x44x44
    .venv/bin/python bench/latency.py --all --runs 300 # every model at its demo input size

A checkpoint's own network can be timed with ``--checkpoint models/ean-rafdb/checkpoint.pt``.
"""

from __future__ import annotations

import argparse
import tempfile

# (model, in_chans, size, variant knobs): the paper's EAN inputs, then the demo recipes' inputs
CASES = [("ean", 3, 44, {}), ("ean", 1, 44, {})]
ALL_CASES = CASES + [
    ("resatt", 1, 48, {}), ("dnn_cbam", 1, 48, {}), ("erfnet_att", 1, 48, {"img_size": 48}), ("dfnet", 3, 64, {}),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="timed calls per network (median)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--all", action="store_true", help="every model of the zoo, not only EAN")
    parser.add_argument("--checkpoint", default=None, help="time this checkpoint's network instead")
    args = parser.parse_args()

    import torch

    import fer_models
    from pipeline.evaluation.latency import latency_vs_reference
    from pipeline.training.transforms import input_px

    torch.set_num_threads(1)
    if args.checkpoint:
        from pipeline.training.checkpoint import load_model

        model, ckpt = load_model(args.checkpoint)
        size = input_px(ckpt["recipe"]["input"])
        cases = [(f"{ckpt['model']} ({args.checkpoint})", model, (1, int(ckpt["in_chans"]), size, size))]
    else:
        cases = [(f"{name} {kw or ''}".strip(), fer_models.create_model(name, num_classes=7, in_chans=c, **kw).eval(),
                  (1, c, s, s)) for name, c, s, kw in (ALL_CASES if args.all else CASES)]
    print(f"{'model':<34} {'input':<12} {'ms/frame':>9} {'MobileNetV2 ms':>15} {'ratio':>7}")
    for label, model, shape in cases:
        with tempfile.TemporaryDirectory() as tmp:
            r = latency_vs_reference(model, shape, tmp, runs=args.runs, threads=args.threads)
        print(f"{label:<34} {'x'.join(map(str, shape[1:])):<12} {r['ms_per_frame']:>9.3f} "
              f"{r['reference_ms_per_frame']:>15.3f} {r['ratio']:>6.2f}x")
    print("ratio = MobileNetV2 ms / model ms, measured alongside in this process (paper 004 Table 5: EAN 3.03x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
