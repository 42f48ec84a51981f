"""Batched image transforms on the training device: random-resized crop, flip, rotation, normalisation.

Batches arrive as uint8 NHWC (as decoded); a permute makes them NCHW in channels-last memory, the layout
convolutions run fastest in. Each training image gets one affine map (crop box, aspect ratio, optional
rotation, flip) drawn from a generator seeded by (seed, epoch, step), and one `grid_sample` call applies
them all at once: the same draws on CPU and GPU, in one process or split across several.

Evaluation takes the centre `size` x `size` of the `S`-pixel decoded image (S = size / crop_ratio, 0.875 by
default: ImageNet's "resize 256, centre crop 224").

Normalisation (`NORMALIZE`): ``imagenet`` subtracts ImageNet's mean and divides by its standard deviation
(what torchvision's weights expect); ``image`` standardises each image by its own statistics (per-channel
mean, overall standard deviation), which removes a random background colour and contrast: on the demo's
figures, drawn in random colours, it took a small CNN from 70% to 11% top-1 error (README, "The demo").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics: what torchvision's weights expect
STD = (0.229, 0.224, 0.225)
NORMALIZE = ("imagenet", "image")
_IMAGE_EPS = 8 / 255  # keeps a flat image from being blown up to noise


@dataclass(frozen=True)
class AugmentSpec:
    """Training augmentation: random-resized crop of `scale` of the area and `ratio` aspect, flips, rotation."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    rotate: float = 0.0  # maximum rotation in degrees (0: none; 180: any angle)

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"crop ratio must satisfy 0 < min <= max, got {self.ratio}")
        if not 0 <= self.rotate <= 180:
            raise ValueError(f"rotation must be within 0..180 degrees, got {self.rotate}")


def to_float(batch: torch.Tensor, normalize: str = "imagenet") -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] (channels-last memory), normalised as `normalize` says."""
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    if normalize == "image":
        x = x - x.mean(dim=(2, 3), keepdim=True)
        x = x / (x.flatten(1).std(dim=1).view(-1, 1, 1, 1) + _IMAGE_EPS)
        return x.contiguous(memory_format=torch.channels_last)
    if normalize != "imagenet":
        raise ValueError(f"normalize must be one of {NORMALIZE}, not {normalize!r}")
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std).contiguous(memory_format=torch.channels_last)


def crop_params(n: int, spec: AugmentSpec, generator: torch.Generator) -> torch.Tensor:
    """[n, 2, 3] affine maps (output -> input, normalised coordinates) for `n` training images."""
    u = torch.rand(n, 6, generator=generator, dtype=torch.float64)
    area = spec.scale[0] + (spec.scale[1] - spec.scale[0]) * u[:, 0]
    log_r = math.log(spec.ratio[0]) + (math.log(spec.ratio[1]) - math.log(spec.ratio[0])) * u[:, 1]
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)  # crop width and height as fractions of the side
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (1 - w) * (2 * u[:, 2] - 1)  # crop centre, normalised to [-1, 1], crop kept inside the image
    cy = (1 - h) * (2 * u[:, 3] - 1)
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0) if spec.flip else torch.ones(n, dtype=torch.float64)
    angle = torch.deg2rad((2 * u[:, 5] - 1) * spec.rotate)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = w * cos * flip
    theta[:, 0, 1] = -h * sin
    theta[:, 1, 0] = w * sin * flip
    theta[:, 1, 1] = h * cos
    theta[:, 0, 2] = cx
    theta[:, 1, 2] = cy
    return theta.float()


def train_transform(
    batch: torch.Tensor, theta: torch.Tensor, size: int, normalize: str = "imagenet"
) -> torch.Tensor:
    """Apply per-image affine maps and resample to `size` x `size`; input uint8 NHWC, output normalised NCHW.

    What a rotation brings in from outside the image is zero after normalisation: the mean colour."""
    x = to_float(batch, normalize)
    grid = F.affine_grid(theta.to(x.device), [x.shape[0], 3, size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last)


def eval_transform(batch: torch.Tensor, size: int, normalize: str = "imagenet") -> torch.Tensor:
    """Centre `size` x `size` crop of the decoded images, normalised."""
    s = batch.shape[1]
    if s < size:
        raise ValueError(f"decoded images of {s} px are smaller than the {size} px input")
    o = (s - size) // 2
    return to_float(batch[:, o : o + size, o : o + size, :], normalize)


def decoded_size(size: int, crop_ratio: float) -> int:
    """Side of the decoded images for an input of `size` px (evaluation crops `crop_ratio` of it)."""
    if not 0.3 <= crop_ratio <= 1.0:
        raise ValueError(f"crop ratio must be within 0.3..1, got {crop_ratio}")
    return max(size, round(size / crop_ratio))


def step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The generator of one training step's draws: a function of (seed, epoch, step) only, so a resumed or
    distributed run draws exactly what an uninterrupted single-process run draws."""
    mixed = np.random.SeedSequence([seed, epoch, step]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(mixed[0] >> np.uint64(1)))
