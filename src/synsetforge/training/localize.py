"""The localization baseline: a box head on any registered network, its training targets from a release's
frozen boxes, and its guesses mapped back to the image's pixels.

The head is class-agnostic and predicts one box per image, ``(cx, cy, w, h)`` in the input's unit frame;
each of the five (label, box) guesses carries that box. It reads the last feature map before the network's
global average pooling (a 1x1 convolution with batch norm, pooled to a 4 x 4 grid, one Linear), because
the pooled features that classification uses have averaged position away. An image with several instances
trains on its largest box: ILSVRC counts a guess right when its box overlaps any true box of its class with
IoU >= 0.5, so one box per image can only aim at one instance, and the largest is the easiest to hit.

A network without an `nn.AdaptiveAvgPool2d` (a user's) gets a Linear on its pooled features instead.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from synsetforge.benchmark.metrics import localization_correct
from synsetforge.errors import InputError
from synsetforge.releases.manifest import iter_items
from synsetforge.store.project import Project
from synsetforge.training.augment import eval_transform
from synsetforge.training.boxgeom import SquareFit, centre_crop_to_decoded, cxcywh_to_xyxy
from synsetforge.training.data import ReleaseData, Samples
from synsetforge.training.engine import EvalResult, autocast, scores_of
from synsetforge.training.loader import DecodedImages
from synsetforge.training.models.base import Classifier

BOX_HEAD = "box_head"
GRID = 4  # the box head pools the feature map to GRID x GRID cells
HIDDEN = 64  # channels of the box head's 1x1 convolution


def _regressor(dim: int) -> nn.Linear:
    """Linear(dim -> 4) that starts at the centred half-size box (zero weights, bias (0.5, 0.5, 0.5, 0.5)).

    No sigmoid: with SGD at classification learning rates a sigmoid saturated within an epoch on the test
    figures and the head stopped learning; the losses take any value and guesses are clipped instead."""
    fc = nn.Linear(dim, 4)
    nn.init.zeros_(fc.weight)
    nn.init.constant_(fc.bias, 0.5)
    return fc


class SpatialBoxHead(nn.Module):
    """Feature map [B, C, h, w] -> (cx, cy, w, h), unit frame: 1x1 conv, batch norm, ReLU, pooled to a
    grid, Linear.

    What was tried on the test figures at the classification learning rate (one run each): a sigmoid
    output, or a ReLU without batch norm, collapsed to one box for every image within a few epochs; no ReLU
    diverged; batch norm with unscaled inputs to the Linear (see `forward`) still collapsed; this learned."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, HIDDEN, 1, bias=False), nn.BatchNorm2d(HIDDEN), nn.ReLU(inplace=True)
        )
        self.grid = nn.AdaptiveAvgPool2d(GRID)
        self.fc = _regressor(HIDDEN * GRID * GRID)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        # scaled to unit length on average, so one SGD step at the classification rate moves a box by a
        # few hundredths, not by the input's dimension times that (which diverged)
        x = torch.flatten(self.grid(self.reduce(fmap)), 1)
        return self.fc(x * (2.0 / x.shape[1]) ** 0.5)


class PooledBoxHead(nn.Module):
    """Pooled features [B, D] -> (cx, cy, w, h) (for networks without a global pooling layer)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = _regressor(dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)


def _global_pool(model: Classifier) -> nn.Module | None:
    """The network's last AdaptiveAvgPool2d: its input is the feature map the box head reads."""
    pools = [m for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    pools = [m for m in pools if not any(m is h for h in _heads(model))]
    return pools[-1] if pools else None


def _heads(model: Classifier) -> list[nn.Module]:
    head = getattr(model, BOX_HEAD, None)
    return list(head.modules()) if isinstance(head, nn.Module) else []


def has_box_head(model: nn.Module) -> bool:
    return isinstance(getattr(model, BOX_HEAD, None), nn.Module)


@contextmanager
def _captured_map(model: Classifier) -> Iterator[dict[str, torch.Tensor]]:
    """While open, each forward through `model.embed` leaves the global pool's input in the dict."""
    pool = _global_pool(model)
    got: dict[str, torch.Tensor] = {}
    if pool is None:
        yield got
        return

    def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        got["map"] = inputs[0]

    handle = pool.register_forward_hook(hook)
    try:
        yield got
    finally:
        handle.remove()


def add_box_head(model: Classifier) -> nn.Module:
    """Give `model` a freshly initialised box head (state-dict keys ``box_head.*``); returns it."""
    pool = _global_pool(model)
    head: nn.Module
    if pool is None:
        head = PooledBoxHead(model.feature_dim)
    else:
        was_training = model.training
        model.eval()  # a probe forward must not touch batch-norm statistics
        side = max(model.min_size, 64)
        param = next(model.parameters())
        with torch.no_grad(), _captured_map(model) as got:
            model.embed(torch.zeros(1, 3, side, side, device=param.device, dtype=param.dtype))
        model.train(was_training)
        head = SpatialBoxHead(int(got["map"].shape[1]))
    p = next(model.parameters())
    head = head.to(device=p.device, dtype=p.dtype)
    setattr(model, BOX_HEAD, head)
    return head


def logits_and_boxes(model: Classifier, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass: class logits [B, K] and raw boxes (cx, cy, w, h) in the input's unit frame [B, 4]."""
    head = getattr(model, BOX_HEAD)
    with _captured_map(model) as got:
        features = model.embed(x)
    logits = model.head(features)
    boxes = head(got["map"]) if "map" in got else head(features)
    return logits, boxes


def unit_boxes(cxcywh: torch.Tensor) -> torch.Tensor:
    """The head's raw (cx, cy, w, h) as xyxy boxes inside the unit square, at least a hundredth wide."""
    xyxy = cxcywh_to_xyxy(cxcywh).clamp(0, 1)
    x1 = xyxy[:, 0].clamp(max=0.99)
    y1 = xyxy[:, 1].clamp(max=0.99)
    x2 = torch.maximum(xyxy[:, 2], x1 + 0.01)
    y2 = torch.maximum(xyxy[:, 3], y1 + 0.01)
    return torch.stack([x1, y1, x2, y2], dim=1)


class Localizer(nn.Module):
    """`forward(x) = (logits, boxes)` of a network with a box head: what DistributedDataParallel wraps."""

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        if not has_box_head(model):
            raise ValueError(f"{model.arch} has no box head (add_box_head)")
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return logits_and_boxes(self.model, x)


# -- the release's boxes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SplitBoxes:
    """Per row of a split's samples: the stored image's size and its frozen boxes of the row's class."""

    widths: np.ndarray  # int64 [n] (0: unknown)
    heights: np.ndarray
    boxes: list[list[tuple[int, int, int, int]]]  # inclusive image pixels

    @property
    def with_boxes(self) -> int:
        return sum(1 for b, w in zip(self.boxes, self.widths, strict=True) if b and w > 0)

    def largest(self, row: int) -> tuple[int, int, int, int] | None:
        if not self.boxes[row] or self.widths[row] <= 0:
            return None
        return max(self.boxes[row], key=lambda b: ((b[2] - b[0] + 1) * (b[3] - b[1] + 1), b))

    def targets(self, side: int, fit: str) -> np.ndarray:
        """float32 [n, 4]: each row's largest box in the decoded frame ([-1, 1] xyxy), NaN without one."""
        out = np.full((len(self.boxes), 4), np.nan, dtype=np.float32)
        for row in range(len(self.boxes)):
            box = self.largest(row)
            if box is not None:
                fit_ = SquareFit.of(int(self.widths[row]), int(self.heights[row]), side, fit)
                out[row] = fit_.to_decoded(box)
        return out


def split_boxes(project: Project, data: ReleaseData, samples: Samples) -> SplitBoxes:
    """The boxes the release froze for each row of `samples` (the row's class only), from the manifest."""
    wanted = {
        (sha, data.classes[int(label)]) for sha, label in zip(samples.sha256, samples.labels, strict=True)
    }
    found: dict[tuple[str, str], tuple[int, int, list[tuple[int, int, int, int]]]] = {}
    for item in iter_items(project.blobs, data.manifest_sha256, samples.split):
        key = (item.sha256, item.synset)
        if key in wanted:
            boxes: list[tuple[int, int, int, int]] = [(b[0], b[1], b[2], b[3]) for b in item.boxes]
            found[key] = (item.width or 0, item.height or 0, boxes)
    rows = [
        found.get((sha, data.classes[int(label)]), (0, 0, []))
        for sha, label in zip(samples.sha256, samples.labels, strict=True)
    ]
    return SplitBoxes(
        np.asarray([r[0] for r in rows], dtype=np.int64),
        np.asarray([r[1] for r in rows], dtype=np.int64),
        [r[2] for r in rows],
    )


# -- guesses ----------------------------------------------------------------------------------------------
@torch.no_grad()
def run_localize(
    model: Classifier,
    images: DecodedImages,
    rows: np.ndarray,
    size: int,
    device: torch.device,
    *,
    batch_size: int = 256,
    pool: concurrent.futures.Executor | None = None,
    normalize: str = "imagenet",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits float32 [n, K], boxes in the eval input's unit frame xyxy [n, 4], rows kept), centre crop."""
    was_training = model.training
    model.eval()
    logits: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    order = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    try:
        for got_rows, batch, _ in images.stream(pool, order):
            if len(got_rows) == 0:
                continue
            x = eval_transform(torch.from_numpy(batch).to(device, non_blocking=True), size, normalize)
            with autocast(device):
                y, b = logits_and_boxes(model, x)
            logits.append(y.float().cpu().numpy())
            boxes.append(unit_boxes(b.float()).cpu().numpy())
            kept.append(got_rows)
    finally:
        model.train(was_training)
    k = logits[0].shape[1] if logits else 0
    return (
        np.concatenate(logits) if logits else np.empty((0, k), np.float32),
        np.concatenate(boxes) if boxes else np.empty((0, 4), np.float32),
        np.concatenate(kept) if kept else np.empty(0, np.int64),
    )


def to_image_boxes(
    unit_xyxy: np.ndarray,
    widths: Sequence[int] | np.ndarray,
    heights: Sequence[int] | np.ndarray,
    side: int,
    size: int,
    fit: str,
) -> np.ndarray:
    """Eval-input unit boxes [n, 4] -> inclusive boxes in each image's own pixels [n, 4] (float64)."""
    out = np.empty((len(unit_xyxy), 4))
    decoded = centre_crop_to_decoded(unit_xyxy, side, size)
    for i, (w, h) in enumerate(zip(widths, heights, strict=True)):
        out[i] = SquareFit.of(int(w), int(h), side, fit).from_decoded(decoded[i], int(w), int(h))
    return out


def localization_hits(
    top5: np.ndarray, truth: np.ndarray, image_boxes: np.ndarray, gt: Sequence[Sequence[Sequence[int]]]
) -> np.ndarray:
    """bool [n]: the benchmark's rule (a guess with the true label and IoU >= 0.5 with one of its boxes),
    every guess of an image carrying the image's one predicted box."""
    n, k = top5.shape
    counts = np.asarray([len(g) for g in gt], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    flat = np.asarray([b for g in gt for b in g], dtype=np.float64).reshape(-1, 4)
    guess_boxes = np.repeat(image_boxes[:, None, :], k, axis=1)
    return localization_correct(
        top5, guess_boxes, truth, flat, offsets, truth[np.repeat(np.arange(n), counts)].astype(np.int32)
    )


def centre_boxes(
    widths: Sequence[int] | np.ndarray, heights: Sequence[int] | np.ndarray, share: tuple[float, float]
) -> np.ndarray:
    """The centre-box baseline: a box of `share` (width, height fractions) of each image, centred."""
    out = np.empty((len(widths), 4))
    for i, (w, h) in enumerate(zip(widths, heights, strict=True)):
        bw, bh = max(1.0, share[0] * w), max(1.0, share[1] * h)
        x1, y1 = round((w - bw) / 2), round((h - bh) / 2)
        out[i] = [x1, y1, min(w - 1, x1 + round(bw) - 1), min(h - 1, y1 + round(bh) - 1)]
    return out


def typical_box_share(boxes: SplitBoxes) -> tuple[float, float]:
    """Median width and height of the largest box per image as fractions of the image (the centre-box
    baseline's box); an InputError when no row has a box."""
    shares = [
        ((b[2] - b[0] + 1) / boxes.widths[r], (b[3] - b[1] + 1) / boxes.heights[r])
        for r in range(len(boxes.boxes))
        if (b := boxes.largest(r)) is not None
    ]
    if not shares:
        raise InputError("the release has no boxes on its train images")
    arr = np.asarray(shares)
    return float(np.median(arr[:, 0])), float(np.median(arr[:, 1]))


@dataclass
class LocalizationEval:
    """Classification scores on the rows, and localization hits on the rows that have true boxes."""

    result: EvalResult
    hits: int
    n_boxed: int

    @property
    def error(self) -> float:
        return 1 - self.hits / self.n_boxed if self.n_boxed else float("nan")


def evaluate_localization(
    model: Classifier,
    images: DecodedImages,
    rows: np.ndarray,
    labels: np.ndarray,
    boxes: SplitBoxes,
    size: int,
    fit: str,
    device: torch.device,
    *,
    pool: concurrent.futures.Executor | None = None,
    normalize: str = "imagenet",
) -> LocalizationEval:
    """Top-1/top-5 error on `rows` and the benchmark's localization rule on those of them with boxes
    (boxes mapped back to each image's pixels, IoU there)."""
    logits, unit, kept = run_localize(model, images, rows, size, device, pool=pool, normalize=normalize)
    result = scores_of(logits, labels[kept])
    boxed = np.asarray([bool(boxes.boxes[r]) and boxes.widths[r] > 0 for r in kept], dtype=bool)
    if not boxed.any():
        return LocalizationEval(result, 0, 0)
    r = kept[boxed]
    pixel = to_image_boxes(unit[boxed], boxes.widths[r], boxes.heights[r], images.size, size, fit)
    top = result.top5[boxed]
    hits = localization_hits(top, labels[r], pixel, [boxes.boxes[i] for i in r])
    return LocalizationEval(result, int(hits.sum()), int(boxed.sum()))


def boxes_by_image(
    project: Project, release: str, split: str, classes: Sequence[str]
) -> dict[int, list[tuple[int, int, int, int, int]]]:
    """image id -> [(class index, x1, y1, x2, y2)] of a release's `split`, as its manifest froze them."""
    from synsetforge.releases.release import get_release

    rel = get_release(project, release)
    index = {c: i for i, c in enumerate(classes)}
    out: dict[int, list[tuple[int, int, int, int, int]]] = {}
    for item in iter_items(project.blobs, rel.manifest_sha256, split):
        if item.synset in index and item.boxes:
            out.setdefault(item.image_id, []).extend((index[item.synset], *b) for b in item.boxes)
    return out
