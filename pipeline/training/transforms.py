"""Preprocessing and augmentation of a recipe, with torchvision's v2 transforms on uint8 tensors.

A recipe's ``input`` says what the network sees (``resize`` then crop to ``px``, ``channels``
1 or 3, ``mean``/``std``, and ``equalize``: histogram equalisation of every image, in training
and evaluation alike, against the lighting differences of real photographs); ``augment`` says
what training adds:

- ``crop``: ``five`` (EAN: one of the four corner crops or the centre crop, chosen at random),
  ``random`` (any position), ``center`` or ``none``;
- ``flip``: probability of a horizontal flip; ``rotation``: degrees of a random rotation;
- ``scale`` (``[min, max]`` zoom) and ``translate`` (fraction of the side): a random affine
  warp together with ``rotation`` (small faces datasets such as CK+: pose and framing jitter);
- ``brightness`` and ``contrast``: strength of a random colour jitter (0 = off);
- ``erasing``: probability of random erasing (DFNet: 0.5, erased pixels set to 0);
- ``mixup``: Beta(a, a) parameter of mixup (0 = off), applied to whole batches by the training
  loss (:func:`pipeline.training.losses.mixup_loss`), not here.

Evaluation resizes and centre-crops; ``ten_crop`` test-time augmentation returns the four corner
and centre crops and their mirror images, whose softmax outputs the evaluator averages.

Batches: a training recipe whose augmentation is only crops (``five``, ``random``, ``center``,
``none``) and ``flip`` (EAN's) gets a :class:`BatchableCompose`, which also transforms a whole batch at once
(:meth:`BatchableCompose.batch`, used by the shard dataset's ``__getitems__``): the same random draws
in the same order, the crops and flips as uint8 slices, then one conversion and normalisation for
the batch; the batch equals the per-sample results stacked, bit for bit, in a fraction of the time.
"""

from __future__ import annotations

from typing import Any, Callable

import torch


def input_px(spec: dict[str, Any]) -> int:
    """The network's input side, ``input.px`` (``input.size`` in checkpoints written before the
    rename, which DVC's run-cache forced: it drops keys named ``size``)."""
    return int(spec["px"] if "px" in spec else spec["size"])


class RandomFiveCrop(torch.nn.Module):
    """One of torchvision's ``five_crop`` crops (4 corners + centre), uniformly at random."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as F

        crops = F.five_crop(img, [self.size, self.size])
        return crops[int(torch.randint(len(crops), (1,)))]


def _prepare(spec: dict[str, Any], resize: int) -> list[Callable]:
    """Resize to ``resize`` and, with ``equalize``, equalise the histogram (uint8, before any crop)."""
    from torchvision.transforms import v2

    steps: list[Callable] = [v2.Resize([resize, resize], antialias=True)]
    if spec.get("equalize", False):
        steps.append(v2.RandomEqualize(p=1.0))
    return steps


def _normalize(spec: dict[str, Any]) -> list[Callable]:
    from torchvision.transforms import v2

    channels = int(spec.get("channels", 1))
    mean = list(spec.get("mean", [0.5] * channels))
    std = list(spec.get("std", [0.5] * channels))
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"input.mean/std need {channels} values, got {mean} / {std}")
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


def train_transform(recipe: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 ``C×H×W`` tensor -> normalised float tensor of the network's input size, augmented."""
    from torchvision.transforms import v2

    spec, aug = recipe["input"], recipe.get("augment") or {}
    size = input_px(spec)
    resize = int(spec.get("resize", size))
    steps = _prepare(spec, resize)
    crop = aug.get("crop", "none") if resize != size else "none"
    if crop == "five":
        steps.append(RandomFiveCrop(size))
    elif crop == "random":
        steps.append(v2.RandomCrop(size))
    elif crop in ("center", "none"):
        steps.append(v2.CenterCrop(size))
    else:
        raise ValueError(f"augment.crop must be five|random|center|none, got {crop!r}")
    if float(aug.get("flip", 0)) > 0:
        steps.append(v2.RandomHorizontalFlip(float(aug["flip"])))
    rotation, translate = float(aug.get("rotation", 0)), float(aug.get("translate", 0))
    scale = aug.get("scale")
    if scale or translate > 0:
        steps.append(v2.RandomAffine(rotation, translate=(translate, translate) if translate > 0 else None,
                                     scale=tuple(float(v) for v in scale) if scale else None))
    elif rotation > 0:
        steps.append(v2.RandomRotation(rotation))
    brightness, contrast = float(aug.get("brightness", 0)), float(aug.get("contrast", 0))
    if brightness > 0 or contrast > 0:
        steps.append(v2.ColorJitter(brightness=brightness or None, contrast=contrast or None))
    steps += _normalize(spec)
    if float(aug.get("erasing", 0)) > 0:
        steps.append(v2.RandomErasing(p=float(aug["erasing"]), value=0))
    if BatchableCompose.handles(steps, resize, size):
        return BatchableCompose(steps)
    return v2.Compose(steps)


class BatchableCompose(torch.nn.Module):
    """A training transform (torchvision v2 ``Compose`` semantics, one image at a time) that can also
    transform a batch in one go, for recipes whose steps are resize, [equalize], a five, random or
    centre crop, [flip] and normalisation (:meth:`handles`).

    :meth:`batch` makes, per image and in the per-sample order, the same calls of torch's global
    generator as the per-sample steps (``RandomEqualize``'s draw, ``RandomFiveCrop``'s
    ``randint(5)``, ``RandomCrop``'s two ``randint`` for top and left, ``RandomHorizontalFlip``'s
    ``rand(1)``), so a seeded run sees the same crops and flips, and its result is the per-sample
    outputs stacked, bit for bit; the per-image work left is the uint8 resize (a no-op at the stored
    size) and, with ``equalize``, the equalisation.
    """

    def __init__(self, steps: list[Callable]) -> None:
        from torchvision.transforms import v2
        from torchvision.transforms.v2 import functional as F

        super().__init__()
        self.transforms = steps  # as v2.Compose has them
        by_type = {type(s): s for s in steps}
        resize = by_type[v2.Resize]
        self.resize = [int(v) for v in resize.size]
        self.equalize = v2.RandomEqualize in by_type
        flip = by_type.get(v2.RandomHorizontalFlip)
        self.flip_p = None if flip is None else float(flip.p)
        norm = by_type[v2.Normalize]
        self.mean, self.std = list(norm.mean), list(norm.std)
        five, anywhere = by_type.get(RandomFiveCrop), by_type.get(v2.RandomCrop)
        if five is not None:
            side = five.size
        else:
            side = int((anywhere or by_type.get(v2.CenterCrop)).size[0])
        self.side = side
        # crop anchors exactly as torchvision computes them: crop a grid of (row, column) coordinates
        h, w = self.resize
        grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
        crops = F.five_crop(grid, [side, side]) if five is not None else (F.center_crop(grid, [side, side]),)
        self.anchors = [(int(c[0, 0, 0]), int(c[1, 0, 0])) for c in crops]  # (top, left)
        self.five = five is not None
        # RandomCrop draws top, then left, each only where the image has room to move the crop
        self.room = (h - side, w - side) if anywhere is not None else None

    @staticmethod
    def handles(steps: list[Callable], resize: int, size: int) -> bool:
        """Whether ``steps`` (as :func:`train_transform` builds them) have a batch form: nothing but
        resize, equalize, one five, random (unpadded) or centre crop inside the image, flip, dtype and
        normalisation."""
        from torchvision.transforms import v2

        kinds = [type(s) for s in steps]
        crops = {RandomFiveCrop, v2.RandomCrop, v2.CenterCrop}
        allowed = {v2.Resize, v2.RandomEqualize, v2.RandomHorizontalFlip, v2.ToDtype, v2.Normalize} | crops
        unpadded = all(s.padding is None and not s.pad_if_needed for s in steps if isinstance(s, v2.RandomCrop))
        return (size <= resize and set(kinds) <= allowed and len(set(kinds)) == len(kinds)
                and len(crops & set(kinds)) == 1 and unpadded)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """One image, through the steps one by one (what ``v2.Compose`` does)."""
        for step in self.transforms:
            img = step(img)
        return img

    def batch(self, images: list[torch.Tensor]) -> torch.Tensor:
        """uint8 ``C×H×W`` images -> the float ``B×C×side×side`` batch of their per-sample results."""
        from torchvision.transforms.v2 import functional as F

        side, crops = self.side, []
        for img in images:  # the draws of the per-sample steps, image by image, in their order
            img = F.resize(img, self.resize, antialias=True)  # v2.Resize; returns img at its size
            if self.equalize:
                torch.rand(1)  # RandomEqualize(p=1) draws before it always applies
                img = F.equalize(img)
            if self.five:
                top, left = self.anchors[int(torch.randint(len(self.anchors), (1,)))]
            elif self.room is not None:  # v2.RandomCrop.make_params: top, then left
                top = int(torch.randint(0, self.room[0] + 1, size=())) if self.room[0] > 0 else 0
                left = int(torch.randint(0, self.room[1] + 1, size=())) if self.room[1] > 0 else 0
            else:
                top, left = self.anchors[0]
            crop = img[..., top:top + side, left:left + side]
            if self.flip_p is not None and bool(torch.rand(1) < self.flip_p):  # RandomHorizontalFlip
                crop = crop.flip(-1)
            crops.append(crop)
        # one conversion and normalisation for the whole batch (in place on the new float tensor)
        return F.normalize(F.to_dtype(torch.stack(crops), torch.float32, scale=True), self.mean, self.std,
                           inplace=True)


def eval_transform(recipe: dict[str, Any], ten_crop: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resize + centre crop + normalise; with ``ten_crop`` a ``10×C×H×W`` stack of crops."""
    from torchvision.transforms import v2

    spec = recipe["input"]
    size = input_px(spec)
    resize = int(spec.get("resize", size))
    norm = v2.Compose(_normalize(spec))
    resize_t = v2.Compose(_prepare(spec, resize))
    if ten_crop:
        from torchvision.transforms.v2 import functional as F

        def tta(img: torch.Tensor) -> torch.Tensor:
            crops = F.ten_crop(resize_t(img), [size, size])
            return torch.stack([norm(c) for c in crops])

        return tta
    return v2.Compose([resize_t, v2.CenterCrop(size), norm])
