"""How often plain MTCNN finds the face in a freshly generated synthetic sample, per dataset.

Acceptance criterion of the align issue: MTCNN (facenet-pytorch, default thresholds, CPU) finds
a face in >= 95% of the images of EVERY dataset of the sample. This script writes a sample into a
temporary directory with :func:`pipeline.synthetic.write_sample`, runs
``MTCNN(keep_all=True).detect`` on (a deterministic subset of) every dataset's images, and prints
the detection rate per dataset, plus per KDEF angle, per RAF-DB image kind and per FER2013 Usage.

    .venv/bin/python bench/sample_detection.py                   # params.yaml counts, 150 images/dataset
    .venv/bin/python bench/sample_detection.py --limit 0         # every image (slow on CK+ and KDEF)
    .venv/bin/python bench/sample_detection.py --per-class 4 --datasets kdef --seed 3

Exit status 1 when a dataset falls below ``--min-rate`` (default 0.95). Recorded rates (and why
the generator's KDEF full profiles turn 40 degrees, not 60): docs/bench.md.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def images_of(name: str, root: Path) -> list[tuple[str, str, object]]:
    """``(group, id, loader)`` for every image of dataset ``name`` under ``root``; loader() -> PIL RGB."""
    from PIL import Image

    def from_file(p: Path):
        return lambda: Image.open(p).convert("RGB")

    out: list[tuple[str, str, object]] = []
    if name == "fer2013":
        with open(root / "fer2013.csv", newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), 1):
                px = np.array(row["pixels"].split(), dtype=np.uint8).reshape(48, 48)
                out.append((row["Usage"], f"row{i}", (lambda a=px: Image.fromarray(a).convert("RGB"))))
    elif name == "ckplus":
        for p in sorted((root / "cohn-kanade-images").rglob("*.png")):
            n = int(p.stem.rsplit("_", 1)[1])
            out.append(("first frame" if n == 1 else "later frames", p.stem, from_file(p)))
    elif name == "jaffe":
        for p in sorted(root.glob("*.tiff")):
            out.append((p.name.split(".")[1][:2], p.stem, from_file(p)))
    elif name == "rafdb":
        for kind in ("original", "aligned"):
            for p in sorted((root / "basic" / "Image" / kind).glob("*.jpg")):
                out.append((kind, p.stem, from_file(p)))
    elif name == "kdef":
        for p in sorted((root / "KDEF").rglob("*.JPG")):
            angle = re.fullmatch(r"[AB][FM]\d\d[A-Z]{2}([A-Z]{1,2})", p.stem).group(1)
            out.append((angle, p.stem, from_file(p)))
    else:
        raise ValueError(f"unknown dataset {name!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--per-class", type=int, default=None, help="default: params.yaml sample.*")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=150, help="images checked per dataset (0 = all)")
    parser.add_argument("--min-rate", type=float, default=0.95)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="write the sample here instead of a temp dir")
    args = parser.parse_args(argv)

    import torch
    from facenet_pytorch import MTCNN

    from pipeline.synthetic import write_sample
    from pipeline.synthetic.layouts import WRITERS

    torch.set_num_threads(args.threads)
    names = args.datasets or list(WRITERS)
    tmp = tempfile.TemporaryDirectory() if args.keep is None else None
    out = Path(tmp.name) if tmp else args.keep
    t0 = time.perf_counter()
    counts = write_sample(out, names, per_class=args.per_class, seed=args.seed, force=True)
    print(f"generated {sum(counts.values())} files in {time.perf_counter() - t0:.1f} s: {counts}")

    mtcnn = MTCNN(keep_all=True, device="cpu")
    failed = False
    print(f"{'dataset':8s} {'checked':>7s} {'found':>6s} {'rate':>6s}  per group")
    for name in names:
        items = images_of(name, out / name)
        if args.limit and len(items) > args.limit:
            pick = np.random.default_rng(0).choice(len(items), args.limit, replace=False)
            items = [items[i] for i in sorted(pick)]
        found, per_group, misses = 0, defaultdict(lambda: [0, 0]), []
        t1 = time.perf_counter()
        for group, ident, load in items:
            boxes, probs = mtcnn.detect(load())
            ok = boxes is not None and len(boxes) > 0 and max(float(p) for p in probs) > 0
            found += ok
            per_group[group][0] += ok
            per_group[group][1] += 1
            if not ok:
                misses.append(ident)
        rate = found / max(1, len(items))
        failed |= rate < args.min_rate
        groups = "  ".join(f"{g}: {a}/{b}" for g, (a, b) in sorted(per_group.items()))
        print(f"{name:8s} {len(items):7d} {found:6d} {rate:6.1%}  {groups}  "
              f"({(time.perf_counter() - t1) / max(1, len(items)) * 1000:.0f} ms/image)")
        if misses:
            print(f"         missed: {', '.join(misses[:12])}{' ...' if len(misses) > 12 else ''}")
    if tmp:
        tmp.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
