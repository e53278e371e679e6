"""Can a tiny CNN learn the synthetic expressions? EAN on 44x44 grey crops, held-out subjects.

Acceptance criterion of the sample generator: EAN (``fer_models.create_model("ean")``, 44x44 grey
input) reaches >= 80% test accuracy on subjects it never saw in training. This script draws
face crops the way the FER2013 / CK+48 writers do (:func:`pipeline.synthetic.layouts._tight_face`,
48x48 grey, random pose, light, background, intensity 0.75-1), for ``--train-subjects`` and
``--test-subjects`` disjoint identities, trains EAN for a few epochs (random 44x44 crops and flips)
and prints train/test accuracy and the per-class test accuracy. A chance-level baseline (majority
class) is printed beside it; ``--hog-baseline`` adds a HOG + linear SVM (seconds, not minutes).

Recorded figures, and the pipeline's own EAN on the FER2013 sample that shows the criterion:
docs/bench.md.

    .venv/bin/python bench/sample_learnability.py                     # ~2-4 min on 2 cores
    .venv/bin/python bench/sample_learnability.py --classes 7 --epochs 20
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def make_set(subject_ids: range, per_subject: int, classes: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images N x 48 x 48 uint8, labels N)``: ``per_subject`` crops per class per subject."""
    from pipeline.synthetic.expressions import expression_knobs
    from pipeline.synthetic.faces import sample_identity
    from pipeline.synthetic.layouts import _tight_face, rng_for

    xs, ys = [], []
    for sid in subject_ids:
        ident = sample_identity(rng_for(seed, "learn", "subject", sid))
        for ci, name in enumerate(classes):
            for k in range(per_subject):
                rng = rng_for(seed, "learn", sid, ci, k)
                knobs = expression_knobs(name, float(rng.uniform(0.75, 1.0)), ident.style)
                xs.append(_tight_face(rng, ident, knobs, 48, grey=True))
                ys.append(ci)
    return np.stack(xs), np.array(ys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=8, help="8 = all unified classes, 7 = without contempt")
    parser.add_argument("--train-subjects", type=int, default=40)
    parser.add_argument("--test-subjects", type=int, default=12)
    parser.add_argument("--per-subject", type=int, default=3, help="crops per class per subject")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hog-baseline", action="store_true", help="also fit HOG + linear SVM (fast)")
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from fer_models import create_model
    from pipeline.core.labels import LABEL_NAMES

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    classes = list(LABEL_NAMES) if args.classes == 8 else [c for c in LABEL_NAMES if c != "contempt"]
    t0 = time.perf_counter()
    xtr, ytr = make_set(range(args.train_subjects), args.per_subject, classes, args.seed)
    xte, yte = make_set(range(1000, 1000 + args.test_subjects), args.per_subject, classes, args.seed)
    print(f"data: {len(xtr)} train / {len(xte)} test crops, {args.train_subjects}/{args.test_subjects} "
          f"disjoint subjects, {len(classes)} classes ({time.perf_counter() - t0:.1f} s)")

    if args.hog_baseline:
        from skimage.feature import hog
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        def feats(x):
            return np.stack([hog(im[2:46, 2:46], orientations=9, pixels_per_cell=(6, 6), cells_per_block=(2, 2))
                             for im in x])

        svm = make_pipeline(StandardScaler(), LinearSVC(C=0.01, max_iter=5000)).fit(feats(xtr), ytr)
        print(f"HOG + linear SVM baseline: held-out-subject test acc {(svm.predict(feats(xte)) == yte).mean():.1%}")

    def tensor(x):
        return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)

    xtr_t, xte_t = tensor(xtr), tensor(xte)[:, :, 2:46, 2:46]
    ytr_t, yte_t = torch.from_numpy(ytr), torch.from_numpy(yte)
    model = create_model("ean", num_classes=len(classes), in_chans=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = args.epochs * ((len(xtr) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed)
    t1 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr_t), generator=gen)
        for b in range(0, len(perm), 64):
            idx = perm[b:b + 64]
            ox, oy = torch.randint(0, 5, (2,), generator=gen).tolist()
            xb = xtr_t[idx, :, oy:oy + 44, ox:ox + 44]
            if torch.rand(1, generator=gen).item() < 0.5:
                xb = xb.flip(-1)
            loss = F.cross_entropy(model(xb), ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        pred_te = model(xte_t).argmax(1)
        pred_tr = model(xtr_t[:, :, 2:46, 2:46]).argmax(1)
    acc_te = (pred_te == yte_t).float().mean().item()
    acc_tr = (pred_tr == ytr_t).float().mean().item()
    chance = np.bincount(yte).max() / len(yte)
    print(f"EAN, {args.epochs} epochs in {time.perf_counter() - t1:.0f} s: train acc {acc_tr:.1%}, "
          f"held-out-subject test acc {acc_te:.1%} (majority baseline {chance:.1%}, ratio {acc_te / chance:.1f}x)")
    for ci, name in enumerate(classes):
        m = yte_t == ci
        print(f"  {name:10s} {(pred_te[m] == ci).float().mean().item():6.1%}")
    return 0 if acc_te >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
