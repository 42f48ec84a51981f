"""A training run's settings, defaulting to the recipe of the paper behind each architecture (SPEC section 7).

- ResNet (He et al. 2016; torchvision's reference): SGD momentum 0.9, learning rate 0.1 per 256 images,
  weight decay 1e-4, 90 epochs with the rate divided by 10 at epochs 30 and 60 (`step`: at 1/3 and 2/3 of
  any epoch count), random-resized crop 224 of 256 and flips, centre crop at test.
- AlexNet (Krizhevsky et al. 2012): SGD momentum 0.9, batch 128, learning rate 0.01, weight decay 5e-4,
  divided by 10 when progress stalls (here on the step schedule), 90 epochs.
- `small` (our CPU demo network): measured on the demo's figures (README, "The demo"): Nesterov SGD at 0.1
  per 256 images, weight decay 5e-4 on weights only, 1/7 of the epochs of warmup then cosine, label
  smoothing 0.1, letterboxed figures at 64 px, any rotation and flips but no crop, per-image normalisation.
Any field can be overridden; `lr` given explicitly is used as is, otherwise it scales with the batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from synsetforge.errors import InputError

SCHEDULES = ("cosine", "step", "constant")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Recipe:
    """An architecture's published defaults."""

    lr_per_256: float
    weight_decay: float
    batch_size: int
    epochs: int
    image_size: int
    schedule: str = "step"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    crop_scale: tuple[float, float] = (0.08, 1.0)
    rotate: float = 0.0
    fit: str = "crop"
    crop_ratio: float = 0.875
    nesterov: bool = False
    normalize: str = "imagenet"
    decay_norm_and_bias: bool = True


RECIPES: dict[str, Recipe] = {
    "resnet": Recipe(lr_per_256=0.1, weight_decay=1e-4, batch_size=256, epochs=90, image_size=224),
    "alexnet": Recipe(lr_per_256=0.02, weight_decay=5e-4, batch_size=128, epochs=90, image_size=224),
    "small": Recipe(
        lr_per_256=0.1,
        weight_decay=5e-4,
        batch_size=128,
        epochs=40,
        image_size=64,
        schedule="cosine",
        warmup_epochs=6,
        label_smoothing=0.1,
        crop_scale=(1.0, 1.0),
        rotate=180.0,
        fit="pad",
        crop_ratio=1.0,
        nesterov=True,
        normalize="image",
        decay_norm_and_bias=False,
    ),
}


def recipe_for(arch: str) -> Recipe:
    """The recipe of `arch`'s family (a network registered by a user gets ResNet's)."""
    if arch in RECIPES:
        return RECIPES[arch]
    family = "alexnet" if arch.startswith("alexnet") else "resnet"
    return RECIPES[family]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's result; saved in every checkpoint so `--resume` can check it."""

    arch: str
    epochs: int
    image_size: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    schedule: str = "step"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    crop_scale: tuple[float, float] = (0.08, 1.0)
    rotate: float = 0.0
    fit: str = "crop"
    crop_ratio: float = 0.875
    normalize: str = "imagenet"
    decay_norm_and_bias: bool = True
    seed: int = 0
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    boxes: bool = False  # train a box head on the release's train boxes too (training.localize)
    box_weight: float = 1.0  # weight of the box loss against the classification loss

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"--epochs must be at least 1, got {self.epochs}")
        if not 16 <= self.image_size <= 1024:
            problems.append(f"--image-size must be within 16..1024 px, got {self.image_size}")
        if self.batch_size < 1:
            problems.append(f"--batch-size must be at least 1, got {self.batch_size}")
        if not self.lr > 0:
            problems.append(f"--lr must be positive, got {self.lr}")
        if self.schedule not in SCHEDULES:
            problems.append(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"--label-smoothing must be within [0, 1), got {self.label_smoothing}")
        if self.warmup_epochs < 0 or self.warmup_epochs >= self.epochs:
            problems.append(f"--warmup-epochs must be within [0, epochs), got {self.warmup_epochs}")
        if self.fit not in ("crop", "pad", "stretch"):
            problems.append(f"--fit must be crop, pad or stretch, got {self.fit!r}")
        if not 0.3 <= self.crop_ratio <= 1.0:
            problems.append(f"--crop-ratio must be within 0.3..1, got {self.crop_ratio}")
        if self.normalize not in ("imagenet", "image"):
            problems.append(f"--normalize must be imagenet or image, got {self.normalize!r}")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            problems.append(f"--min-crop must be within (0, 1], got {self.crop_scale[0]}")
        if not 0 < self.box_weight < 1000:
            problems.append(f"--box-weight must be within (0, 1000), got {self.box_weight}")
        if problems:
            raise InputError("; ".join(problems))

    @classmethod
    def for_arch(cls, arch: str, **overrides: Any) -> TrainConfig:
        """The arch's recipe with `overrides` (None values are ignored); lr scales with the batch size."""
        r = recipe_for(arch)
        given = {k: v for k, v in overrides.items() if v is not None}
        batch = int(given.get("batch_size", r.batch_size))
        base: dict[str, Any] = {
            "arch": arch,
            "epochs": r.epochs,
            "image_size": r.image_size,
            "batch_size": batch,
            "lr": r.lr_per_256 * batch / 256,
            "weight_decay": r.weight_decay,
            "nesterov": r.nesterov,
            "schedule": r.schedule,
            "warmup_epochs": r.warmup_epochs,
            "label_smoothing": r.label_smoothing,
            "crop_scale": r.crop_scale,
            "rotate": r.rotate,
            "fit": r.fit,
            "crop_ratio": r.crop_ratio,
            "normalize": r.normalize,
            "decay_norm_and_bias": r.decay_norm_and_bias,
        }
        unknown = set(given) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InputError(f"unknown training settings: {', '.join(sorted(unknown))}")
        base.update(given)
        if "warmup_epochs" not in given:  # the recipe's warmup, as the same share of the epochs
            base["warmup_epochs"] = r.warmup_epochs * base["epochs"] / r.epochs
        return cls(**base)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["crop_scale"] = list(self.crop_scale)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        data["crop_scale"] = tuple(data.get("crop_scale", (0.08, 1.0)))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """The learning rate of a step: linear warmup, then the schedule (a pure function of the step)."""
        total = self.epochs * steps_per_epoch
        warm = round(self.warmup_epochs * steps_per_epoch)
        if step < warm:
            return self.lr * (step + 1) / warm
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "step":
            epoch = step // steps_per_epoch
            drops = sum(epoch >= round(self.epochs * f) for f in (1 / 3, 2 / 3)) if self.epochs >= 3 else 0
            return self.lr * 0.1**drops
        import math

        progress = (step - warm) / max(1, total - warm)
        return self.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
