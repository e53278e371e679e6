"""The ONet probe as a teacher (forward only) and as a student (a training step of its head), NCHW vs NHWC.

    .venv/bin/python bench/teacher_speed.py [--threads 1] [--seconds 2] [--batch 64]

``FaceProbe`` runs its frozen ONet trunk in channels_last (NHWC) whatever layout it is given, and a
recipe's teacher is moved to the student's layout (``train.<model>.channels_last``). The baseline
here is the trunk as it ran before, in PyTorch's default contiguous (NCHW) layout on the grey batch
expanded to three channels; both are timed alternately in one process on the same random batch
(48 px, the CK+48 recipes), and the ratio is printed. The two outputs agree to float rounding.

Recorded ratios, and the end-to-end effect in the CK+48 bench: docs/bench.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from fer_models import create_model


def timed(fn, seconds: float) -> float:
    """Seconds per call of ``fn`` (after two warm-up calls)."""
    fn(), fn()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nchw = create_model("onet_probe", num_classes=7, in_chans=1, img_size=48).eval()
    nhwc = create_model("onet_probe", num_classes=7, in_chans=1, img_size=48).eval()
    nhwc.load_state_dict(nchw.state_dict())
    nhwc.to(memory_format=torch.channels_last)
    x = torch.randn(args.batch, 1, 48, 48)

    def before(m, z):  # the trunk in the default layout, as FaceProbe ran it before
        return m.fc(m.drop(m.norm(m.trunk(z.expand(-1, 3, -1, -1)).flatten(1))))

    with torch.no_grad():
        diff = (before(nchw, x) - nhwc(x.contiguous(memory_format=torch.channels_last))).abs().max().item()
        t_old = timed(lambda: before(nchw, x), args.seconds)
        t_new = timed(lambda: nhwc(x.contiguous(memory_format=torch.channels_last)), args.seconds)
    print(f"teacher forward, batch {args.batch}: NCHW {t_old * 1e3:.1f} ms, NHWC {t_new * 1e3:.1f} ms, "
          f"{t_old / t_new:.2f}x (max |difference| of logits {diff:.1e})")

    y = torch.randint(0, 7, (args.batch,))
    steps = []
    for model, forward in ((nchw, lambda z: before(nchw, z)), (nhwc, nhwc)):
        model.train()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], 0.01, momentum=0.9)
        z = x if model is nchw else x.contiguous(memory_format=torch.channels_last)

        def step(forward=forward, opt=opt, z=z):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(forward(z), y).backward()
            opt.step()

        steps.append(timed(step, args.seconds))
    print(f"probe training step, batch {args.batch}: NCHW {steps[0] * 1e3:.1f} ms, NHWC {steps[1] * 1e3:.1f} ms, "
          f"{steps[0] / steps[1]:.2f}x")


if __name__ == "__main__":
    main()
