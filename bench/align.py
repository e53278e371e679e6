"""Throughput of the align stage's face detection against the naive MTCNN baseline.

Baseline: facenet-pytorch's default ``MTCNN()`` called once per image at full resolution.
Stage path: :func:`pipeline.align.detector.detect_faces` with the dataset's ``align.<dataset>``
detection settings from params.yaml (batches of equal-size images, a working-size downscale,
a pyramid — ``min_face_size``/``factor`` — fitted to the dataset).

Both run over the same decoded images in the same process, interleaved block by block, so
machine load (other users of the cores) hits both alike; the figure that matters is the ratio.
Agreement: the share of images where both paths agree on the face — both find none, or the best
faces' boxes overlap with IoU > 0.8.

Images: the synthetic generator's JAFFE (256x256 grey) and KDEF (562x762 colour) samples,
written to a temporary directory (``--raw DIR`` to use an existing raw root instead). KDEF is
measured on the frontal angle (S, as FER work uses it) by default; ``--kdef-angles S HL HR``
adds the half profiles, where the two paths' boxes differ more often, and ``FL FR`` full profiles
are mostly missed by both (MTCNN is a frontal detector).

Usage::

    .venv/bin/python bench/align.py                 # 2 torch threads, as the acceptance asks
    .venv/bin/python bench/align.py --threads 1 --per-class 2

What it measures and the recorded figures: docs/bench.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATASETS = ("jaffe", "kdef")


def load_images(raw: Path, dataset: str, kdef_angles: list[str]) -> list[np.ndarray]:
    """Decoded RGB images of one dataset's native layout under ``raw`` (sorted by path)."""
    from pipeline.align.image_io import decode_rgb

    if dataset == "jaffe":
        files = sorted((raw / "jaffe").rglob("*.tiff"))
    else:
        files = sorted(p for p in (raw / "kdef").rglob("*") if p.suffix.upper() == ".JPG")
        files = [p for p in files if _kdef_angle(p.stem) in kdef_angles]
    if not files:
        raise SystemExit(f"no {dataset} images under {raw / dataset}")
    return [decode_rgb(p.read_bytes()) for p in files]


def _kdef_angle(stem: str) -> str:
    """The angle code of a KDEF file stem ``AF01ANHL`` -> ``HL``, ``AF01ANS`` -> ``S``."""
    return stem[6:].upper()


def iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def naive_boxes(mtcnn, images: list[np.ndarray]) -> list:
    """Best box per image of the baseline: default MTCNN, one call per full-resolution image."""
    out = []
    for img in images:
        boxes, probs = mtcnn.detect(img)
        out.append(None if boxes is None else [float(v) for v in boxes[int(np.argmax([float(p) for p in probs]))]])
    return out


def stage_boxes(images: list[np.ndarray], settings) -> list:
    from pipeline.align.detector import detect_faces

    return [list(f[0].box) if f else None for f in detect_faces(images, settings)]


def bench(dataset: str, images: list[np.ndarray], block: int) -> dict:
    """Time both paths block by block, interleaved (alternating which goes first)."""
    from facenet_pytorch import MTCNN

    from pipeline.core import params
    from pipeline.align.settings import AlignSettings

    settings = AlignSettings.from_dict(params.section("align", dataset), where=f"align.{dataset}").detection
    naive = MTCNN(device="cpu")
    naive_boxes(naive, images[:1]), stage_boxes(images[:1], settings)  # warm-up, not timed
    t_naive = t_stage = 0.0
    got_naive, got_stage = [], []
    for k, start in enumerate(range(0, len(images), block)):
        part = images[start:start + block]
        order = ("naive", "stage") if k % 2 == 0 else ("stage", "naive")
        for path in order:
            t0 = time.perf_counter()
            if path == "naive":
                got_naive += naive_boxes(naive, part)
                t_naive += time.perf_counter() - t0
            else:
                got_stage += stage_boxes(part, settings)
                t_stage += time.perf_counter() - t0
    agree = sum((a is None and b is None) or (a is not None and b is not None and iou(a, b) > 0.8)
                for a, b in zip(got_naive, got_stage))
    n = len(images)
    return {
        "dataset": dataset, "images": n, "shape": "x".join(map(str, images[0].shape)),
        "naive_ips": n / t_naive, "stage_ips": n / t_stage, "ratio": t_naive / t_stage,
        "agreement": agree / n, "naive_found": sum(b is not None for b in got_naive) / n,
        "stage_found": sum(b is not None for b in got_stage) / n,
        "settings": settings,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, help="raw root holding jaffe/ and kdef/ (default: generate)")
    parser.add_argument("--per-class", type=int, default=3, help="generated sample size (per class)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the acceptance: 2 cores)")
    parser.add_argument("--block", type=int, default=16, help="images per interleaved timing block")
    parser.add_argument("--kdef-angles", nargs="+", default=["S"])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-align-") as tmp:
        raw = args.raw
        if raw is None:
            from pipeline.synthetic import write_dataset

            raw = Path(tmp)
            for d in args.datasets:
                write_dataset(d, raw / d, per_class=args.per_class, seed=0)
        results = [bench(d, load_images(raw, d, args.kdef_angles), args.block) for d in args.datasets]

    print(f"\nalign detection throughput, torch threads = {args.threads}, same process, interleaved")
    print(f"{'dataset':8} {'images':>6} {'image':>11} {'naive img/s':>12} {'stage img/s':>12} "
          f"{'ratio':>6} {'agree':>6} {'naive found':>11} {'stage found':>11}")
    for r in results:
        print(f"{r['dataset']:8} {r['images']:6d} {r['shape']:>11} {r['naive_ips']:12.2f} {r['stage_ips']:12.2f} "
              f"{r['ratio']:5.2f}x {r['agreement']:6.1%} {r['naive_found']:11.1%} {r['stage_found']:11.1%}")
    for r in results:
        print(f"  {r['dataset']}: {r['settings']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
