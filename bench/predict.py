"""Throughput of ``fer-pipeline predict``: faces/second on photographs, frames/second on a video.

Measured on the product's own path (:class:`pipeline.inference.run.PredictRun`: decode, MTCNN,
5-point warp, the training's preprocessing, the network), with the network in PyTorch (the
checkpoint) and in ONNX Runtime (the file ``fer-pipeline export`` writes), alternately in the same
process, so that other load on the cores hits both alike. The network is an untrained EAN at the
paper's FER2013 input (1x44x44 grey; ``--channels 3`` for colour): its speed does not depend on
its weights.

- **photos**: ``../shared/realdata/photos/`` when present (read in place, never copied), else
  generated 1280x960 photographs with three faces; faces/second over all of them.
- **video**: a generated 640x480 video (``--frames``, 25 fps) with one face per frame (about
  ``--face-px`` wide, the camera panning slowly), or a real photograph's face pasted on the
  generated background (``--paste PHOTO``); frames/second end to end, with faces followed
  between frames (the default) and detected on every whole frame (``--no-track``).
- "per CPU s" divides by the CPU time this process used (all its threads): with ``--threads 1``
  it is what one idle core would give, whatever else the machine runs; "per second" is wall time.
- **where the time goes**: per frame, reading, whole-frame detection, followed detection, warp,
  preprocessing and each network, timed separately on the same frames; and whole-frame MTCNN
  under other settings (``max_side``, ``min_face_size``, ``factor``), with how many faces each finds.

Usage::

    .venv/bin/python bench/predict.py                  # 2 threads, as the acceptance asks
    .venv/bin/python bench/predict.py --frames 60 --rounds 2 --paste ../shared/realdata/photos/kate_siegel.jpg

Recorded figures: docs/bench.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REALDATA_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "photos"
#: whole-frame MTCNN settings compared on the video frames (max_side, min_face_size, factor, NHWC);
#: predict runs MTCNN in NHWC, the align stage in NCHW
SWEEP = [(1280, 20, 0.709, True), (640, 40, 0.709, True), (320, 20, 0.709, True), (320, 40, 0.709, False),
         (320, 40, 0.709, True), (320, 40, 0.6, True), (240, 40, 0.709, True), (160, 24, 0.709, True)]


def make_model(work: Path, channels: int) -> tuple[Path, Path]:
    """An untrained EAN checkpoint (7 classes) and its ONNX export, in ``work``."""
    import torch

    from pipeline.inference.export import export_model
    from pipeline.training.checkpoint import build_model, save_checkpoint

    torch.manual_seed(0)
    names = ["neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    recipe = {"input": {"px": 44, "resize": 48, "channels": channels, "mean": [0.5] * channels,
                        "std": [0.5] * channels}}
    ckpt = work / "checkpoint.pt"
    save_checkpoint(ckpt, build_model("ean", 7, channels, {}), model="ean", model_args={}, num_classes=7,
                    in_chans=channels, recipe=recipe, label_names=names, label_ids=[0, 1, 3, 4, 5, 6, 7],
                    dataset="fer2013")
    onnx = export_model(ckpt, work / "ean.onnx", "onnx").path
    return ckpt, onnx


def drawn_scene(w: int, h: int, heads: list[tuple[float, float, float]], seed: int) -> np.ndarray:
    """A BGR picture with drawn faces at ``(centre x, centre y, width)`` on a cluttered background."""
    from pipeline.synthetic.expressions import expression_knobs
    from pipeline.synthetic.faces import render, sample_identity
    from pipeline.synthetic.photo import Camera, background, finish, random_scene

    rng = np.random.default_rng(seed)
    img = background(rng, h, w, "clutter")
    for i, (cx, cy, px) in enumerate(heads):
        ident = sample_identity(rng, glasses_p=0.0)
        label = ("happiness", "surprise", "sadness", "anger")[i % 4]
        render(img, ident, expression_knobs(label, 1.0, ident.style), random_scene(rng, cx, cy, px / 2, 4, 6))
    return finish(img, rng, Camera(blur=0.6, noise=0.01, vignette=0.1))


def pasted_face(photo: Path, w: int, h: int, face_px: int, seed: int) -> np.ndarray:
    """The most probable face of a real photograph (box widened 1.8x) pasted at the centre of a
    generated ``w x h`` background, scaled so the face is ``face_px`` wide (BGR)."""
    import cv2

    from pipeline.align.detector import detect_faces
    from pipeline.align.settings import DetectionSettings
    from pipeline.inference.sources import read_image
    from pipeline.synthetic.photo import background

    rgb = read_image(photo)
    faces = detect_faces([rgb], DetectionSettings(max_side=1280, min_face_size=20))[0]
    if not faces:
        raise SystemExit(f"{photo}: no face to paste")
    x1, y1, x2, y2 = faces[0].box
    side = 1.8 * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    a, b = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    crop = cv2.cvtColor(rgb[b:int(cy + side / 2), a:int(cx + side / 2)], cv2.COLOR_RGB2BGR)
    scale = face_px / (x2 - x1)
    crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    img = (background(np.random.default_rng(seed), h, w, "clutter") * 255).astype(np.uint8)
    ch, cw = min(h, crop.shape[0]), min(w, crop.shape[1])
    oy, ox = (h - ch) // 2, (w - cw) // 2
    img[oy:oy + ch, ox:ox + cw] = crop[:ch, :cw]
    return img


def write_video(path: Path, scene: np.ndarray, frames: int, w: int, h: int, fps: float = 25.0) -> Path:
    """A ``w x h`` video panning slowly over ``scene`` (larger than the frame): the face moves a
    few pixels a frame, along an ellipse."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    span_x, span_y = scene.shape[1] - w, scene.shape[0] - h
    for i in range(frames):
        t = 2 * np.pi * i / max(frames, 1)
        x = int(span_x / 2 + span_x / 2 * np.cos(t) * 0.9)
        y = int(span_y / 2 + span_y / 2 * np.sin(t) * 0.9)
        writer.write(np.ascontiguousarray(scene[y:y + h, x:x + w]))
    writer.release()
    return path


def photos(work: Path) -> list[Path]:
    """The real photographs when present, else three generated ones (1280x960, three faces each)."""
    import cv2

    if REALDATA_PHOTOS.is_dir():
        found = sorted(p for p in REALDATA_PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if found:
            return found
    out = []
    for i in range(3):
        path = work / f"group{i}.jpg"
        cv2.imwrite(str(path), drawn_scene(1280, 960, [(300, 420, 200), (650, 380, 170), (1000, 450, 230)], 100 + i))
        out.append(path)
    return out


def time_run(predictor, items, **kwargs) -> tuple[float, float, int, int]:
    """Wall and CPU seconds (this process, all threads) of one :class:`PredictRun` over ``items``;
    the faces found and the images or frames done."""
    from pipeline.inference.run import PredictRun

    job = PredictRun(predictor, **kwargs)
    t, c = time.perf_counter(), time.process_time()
    for _ in job.rows(items):
        pass
    s = job.summary
    return time.perf_counter() - t, time.process_time() - c, s.faces, s.images + s.frames


def breakdown(predictor, onnx_predictor, video: Path) -> list[tuple[str, float, float, str]]:
    """Wall and CPU milliseconds per frame of each step, on the video's frames."""
    from pipeline.align.policy import align_faces
    from pipeline.inference.sources import open_video
    from pipeline.inference.tracking import FaceTracker

    def per_frame(fn, items) -> tuple[tuple[float, float], list]:
        t, c = time.perf_counter(), time.process_time()
        out = [fn(x) for x in items]
        return (1000 * (time.perf_counter() - t) / len(items), 1000 * (time.process_time() - c) / len(items)), out

    cap, _ = open_video(video)
    read_ms, rgb = per_frame(lambda _: cap.read()[1], range(int(cap.get(7))))  # 7: CAP_PROP_FRAME_COUNT
    rgb = [f[:, :, ::-1].copy() for f in rgb if f is not None]
    settings = predictor.settings("video")
    full_ms, full = per_frame(lambda f: predictor.detect(f, "video"), rgb)
    tracker = FaceTracker(settings.detection, device=settings.device)
    track_ms, _ = per_frame(tracker, rgb)
    warp_ms, aligned = per_frame(lambda fx: align_faces(fx[0], settings, faces=fx[1]), list(zip(rgb, full)))
    crops = [[c for c, _ in a] for a in aligned if a]
    prep_ms, xs = per_frame(predictor.preprocess, crops)
    torch_ms, _ = per_frame(predictor.backend, xs)
    onnx_ms, _ = per_frame(onnx_predictor.backend, xs)
    found = sum(len(f) for f in full)
    return [("read + decode the frame (OpenCV)", *read_ms, ""),
            ("MTCNN on the whole frame (align.video)", *full_ms, f"{found}/{len(rgb)} frames with a face"),
            ("MTCNN, faces followed (FaceTracker)", *track_ms, f"{tracker.full_detections} whole-frame detections"),
            ("5-point warp of the face", *warp_ms, ""),
            ("preprocessing (PNG round trip, resize, normalise)", *prep_ms, ""),
            ("EAN in PyTorch", *torch_ms, ""),
            ("EAN in ONNX Runtime", *onnx_ms, "")]


def sweep(video: Path, runs: int) -> list[tuple[tuple[int, int, float, bool], float, float, int]]:
    """Whole-frame MTCNN wall and CPU ms per frame and frames with a face, under each setting of :data:`SWEEP`."""
    from pipeline.align.detector import detect_faces
    from pipeline.align.settings import DetectionSettings
    from pipeline.inference.sources import frames, open_video

    cap, _ = open_video(video)
    rgb = [f for i, f in frames(cap) if i < runs]
    out = []
    for max_side, min_face, factor, nhwc in SWEEP:
        s = DetectionSettings(max_side=max_side, min_face_size=min_face, factor=factor, thresholds=(0.6, 0.7, 0.9))
        detect_faces([rgb[0]], s, channels_last=nhwc)  # builds this MTCNN
        t, c = time.perf_counter(), time.process_time()
        found = sum(1 for f in rgb if detect_faces([f], s, channels_last=nhwc)[0])
        out.append(((max_side, min_face, factor, nhwc), 1000 * (time.perf_counter() - t) / len(rgb),
                    1000 * (time.process_time() - c) / len(rgb), found))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default 2)")
    parser.add_argument("--frames", type=int, default=100, help="frames of the generated video (default 100)")
    parser.add_argument("--face-px", type=int, default=150, help="face width in the video, pixels (default 150)")
    parser.add_argument("--paste", type=Path, default=None, help="paste this photograph's face instead of a drawn one")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per figure (median; default 3)")
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3), help="EAN input channels (default 1)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the MTCNN settings table")
    parser.add_argument("--omp-wait", choices=("passive", "active"), default="passive",
                        help="OpenMP's idle threads sleep (passive: what `predict` sets) or spin (active: "
                             "OpenMP's default; see docs/bench.md)")
    args = parser.parse_args()

    import os

    os.environ["OMP_WAIT_POLICY"] = args.omp_wait.upper()  # before torch loads OpenMP
    import torch

    from pipeline.inference.predictor import Predictor
    from pipeline.inference.sources import expand

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), OMP_WAIT_POLICY={args.omp_wait}, "
          f"{os.cpu_count()} CPU(s) visible, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt, onnx = make_model(work, args.channels)
        engines = {"pytorch": Predictor.open(checkpoint=ckpt, device="cpu"),
                   "onnxruntime": Predictor.open(model=onnx, device="cpu", threads=args.threads)}
        w, h = 640, 480
        scene = (pasted_face(args.paste, w + 160, h + 120, args.face_px, 7) if args.paste else
                 drawn_scene(w + 160, h + 120, [((w + 160) / 2, (h + 120) / 2, args.face_px)], 7))
        video = write_video(work / "clip.mp4", scene, args.frames, w, h)
        photo_items = expand([str(p) for p in photos(work)])
        video_items = expand([str(video)])
        for p in engines.values():  # warm up: build the MTCNNs, the first inference
            time_run(p, photo_items[:1])
            time_run(p, video_items, every=max(1, args.frames // 4))

        cases = [(f"photos ({len(photo_items)} files)", photo_items, {}, "faces"),
                 ("video 640x480, faces followed", video_items, {"track": True}, "frames"),
                 ("video 640x480, whole-frame MTCNN", video_items, {"track": False}, "frames")]
        print(f"\n{'input':<36} {'engine':<12} {'per second':>10} {'per CPU s':>10} {'unit':<7} {'faces':>6}  "
              f"wall seconds of each round")
        for label, items, kwargs, unit in cases:
            times: dict[str, list[float]] = {e: [] for e in engines}
            cpu: dict[str, list[float]] = {e: [] for e in engines}
            counts = {}
            for _ in range(args.rounds):
                for engine, predictor in engines.items():
                    seconds, cpu_seconds, faces, done = time_run(predictor, items, **kwargs)
                    times[engine].append(seconds)
                    cpu[engine].append(cpu_seconds)
                    counts[engine] = (faces, done)
            for engine in engines:
                faces, done = counts[engine]
                n = faces if unit == "faces" else done
                print(f"{label:<36} {engine:<12} {n / statistics.median(times[engine]):>10.1f} "
                      f"{n / statistics.median(cpu[engine]):>10.1f} {unit:<7} {faces:>6}  "
                      f"{' '.join(f'{t:.2f}' for t in times[engine])}")
            speedup = statistics.median(times["pytorch"]) / statistics.median(times["onnxruntime"])
            print(f"{'':<36} {'ONNX/PyTorch':<12} {speedup:>9.2f}x (wall)")

        print("\nwhere the time goes, per frame of the video (wall ms, CPU ms of all threads)")
        for step, ms, cpu_ms, note in breakdown(engines["pytorch"], engines["onnxruntime"], video):
            print(f"  {step:<52} {ms:>8.2f} {cpu_ms:>8.2f}  {note}")
        if not args.no_sweep:
            print("\nwhole-frame MTCNN on the video frames: max_side, min_face_size, factor, layout -> wall ms, "
                  "CPU ms per frame, frames with a face")
            for (max_side, min_face, factor, nhwc), ms, cpu_ms, found in sweep(video, min(args.frames, 30)):
                print(f"  max_side {max_side:>4}  min_face_size {min_face:>3}  factor {factor:<5} "
                      f"{'NHWC' if nhwc else 'NCHW'}  {ms:>8.1f} {cpu_ms:>8.1f}  {found}/{min(args.frames, 30)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
