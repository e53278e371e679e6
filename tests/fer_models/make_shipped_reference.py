"""Regenerate ``shipped_ean_reference.json``: ten generated faces and the logits that the checkpoint
the shipped EAN was published from gives them (issue 32). Run after every ``fer-pipeline publish``
of ``ean``::

    python tests/fer_models/make_shipped_reference.py --checkpoint <work>/models/ean_distilled-fer2013/checkpoint.pt

The checkpoint must be the one named in ``fer_models/weights/ean.json`` (its sha256 is checked), so
the stored logits are the exported-from network's, not the shipped file's: the test then checks
that the shipped weights reproduce them. The faces are the project's generated ones (never a real
face), stored as numbers so the check does not move when the face generator changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).with_name("shipped_ean_reference.json")
FACES = 10


def generated_faces(n: int = FACES, seed: int = 0) -> np.ndarray:
    """``n`` generated 48x48 grey FER2013-style faces (uint8), one class after another."""
    from pipeline.synthetic.layouts import fer2013_rows

    rows = fer2013_rows(per_class=2, seed=seed)[:n]
    return np.stack([np.array(pixels.split(), dtype=np.uint8).reshape(48, 48) for _, pixels, _ in rows])


def network_input(faces: np.ndarray, card: dict) -> torch.Tensor:
    """The faces as the shipped network takes them: centre crop to the card's input size, grey
    replicated to its channels, normalised by its mean and std."""
    chans, h, w = card["input_size"]
    top, left = (faces.shape[1] - h) // 2, (faces.shape[2] - w) // 2
    x = torch.from_numpy(faces[:, top:top + h, left:left + w].astype(np.float32) / 255.0)
    x = x[:, None].expand(-1, chans, -1, -1)
    mean = torch.tensor(card["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(card["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="the checkpoint ean.json was published from")
    parser.add_argument("--weights", type=Path, default=None, help="folder of ean.json (default: fer_models/weights)")
    parser.add_argument("--out", type=Path, default=REFERENCE)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from fer_models import pretrained as shipped
    from pipeline.core.digest import file_sha256
    from pipeline.training.checkpoint import load_model

    card = json.loads(((args.weights or shipped.PACKAGE_WEIGHTS) / "ean.json").read_text())
    sha = file_sha256(args.checkpoint)
    if sha != card["provenance"]["checkpoint_sha256"]:
        parser.error(f"--checkpoint {args.checkpoint}: sha256 {sha[:16]}... is not the checkpoint ean.json was "
                     f"published from ({card['provenance']['checkpoint_sha256'][:16]}...)")
    model, _ = load_model(args.checkpoint, "cpu")
    faces = generated_faces()
    with torch.no_grad():
        logits = model(network_input(faces, card))
    args.out.write_text(json.dumps({
        "about": "tests/fer_models/make_shipped_reference.py: the logits of the checkpoint ean.json was published from",
        "checkpoint_sha256": sha, "weights_sha256": card["sha256"], "classes": card["classes"],
        "faces": faces.reshape(len(faces), -1).tolist(),
        "logits": [[round(v, 6) for v in row] for row in logits.tolist()]}) + "\n")
    print(f"{args.out}: {len(faces)} faces, logits of {args.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
