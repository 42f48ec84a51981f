"""ILSVRC metrics, vectorised over images (Russakovsky et al. 2015; SPEC section 5).

* flat error: per image e = min_j d(l_j, g), d = 0 on a match; top-1 uses the first guess only. -1 (no
  guess) never matches, duplicate guesses are harmless.
* hierarchical error (2010-2011): per image the smallest cost[guess, truth] over the guesses, where
  cost is a class x class matrix of lowest-common-ancestor heights (0 on the diagonal) supplied by the
  caller; a missing guess costs the largest possible height. Both the raw mean (2010 devkit) and the mean
  divided by the largest height (2011) are reported.
* localization (2011-): correct iff a guess has the true label and IoU >= 0.5 with any ground-truth box
  of that label, IoU on inclusive pixel coordinates as in the devkit.

Every function takes plain arrays so each can be checked alone; `score` runs them all and keeps the
per-image vectors that bootstrap intervals and paired tests need.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from synsetforge.benchmark.data import GroundTruth, Submission
from synsetforge.errors import InputError

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class ConfusedPair:
    """`count` images of class `truth` whose top-1 guess was `guess` (0-based class indices)."""

    truth: int
    guess: int
    count: int


@dataclass(frozen=True, eq=False)
class Scores:
    """All metrics of one submission; errors are fractions in [0, 1].

    The per-image vectors (`*_correct`, `hierarchical_cost`) are aligned with `image_ids`, which lists
    the scored images (excluded ones removed).
    """

    image_ids: tuple[str, ...]
    n_excluded: int
    top1_error: float
    top5_error: float
    top1_correct: np.ndarray
    top5_correct: np.ndarray
    per_class_images: np.ndarray
    per_class_top1_accuracy: np.ndarray
    per_class_top5_accuracy: np.ndarray
    confused_pairs: tuple[ConfusedPair, ...]
    hierarchical_cost: np.ndarray | None = None
    hierarchical_error_raw: float | None = None
    hierarchical_error_normalized: float | None = None
    hierarchy_max_height: float | None = None
    localization_correct: np.ndarray | None = None
    localization_error: float | None = None
    per_class_localization_accuracy: np.ndarray | None = None

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    def summary(self) -> dict[str, Any]:
        """Headline numbers as plain Python values (JSON-ready)."""
        return {
            "n_images": self.n_images,
            "n_excluded": self.n_excluded,
            "top1_error": self.top1_error,
            "top5_error": self.top5_error,
            "hierarchical_error_raw": self.hierarchical_error_raw,
            "hierarchical_error_normalized": self.hierarchical_error_normalized,
            "hierarchy_max_height": self.hierarchy_max_height,
            "localization_error": self.localization_error,
        }


def error_rate(correct: np.ndarray) -> float:
    """Share of images not correct, as wrong/n so that it is exact to the last bit."""
    return (len(correct) - int(np.count_nonzero(correct))) / len(correct)


def top_k_correct(labels: np.ndarray, truth: np.ndarray, k: int = 5) -> np.ndarray:
    """bool [n]: one of the first k guesses equals the truth."""
    return (labels[:, :k] == truth[:, None]).any(axis=1)


def check_cost_matrix(
    cost: np.ndarray, n_classes: int, max_height: float | None = None
) -> tuple[np.ndarray, float]:
    """Validate a class x class LCA-height matrix; returns it as float64 and the largest height to use."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.shape != (n_classes, n_classes):
        raise InputError(f"cost matrix must be {n_classes} x {n_classes}, not {cost.shape}")
    if not np.isfinite(cost).all() or (cost < 0).any():
        raise InputError("cost matrix must hold finite, non-negative heights")
    if (np.diagonal(cost) != 0).any():
        raise InputError("cost matrix must be 0 on the diagonal (a right guess costs nothing)")
    top = float(cost.max())
    if max_height is None:
        max_height = top
    elif max_height < top:
        raise InputError(f"max_height {max_height} is below the largest cost {top}")
    if max_height <= 0:
        raise InputError("the largest possible height must be positive")
    return cost, float(max_height)


def hierarchical_costs(
    labels: np.ndarray, truth: np.ndarray, cost: np.ndarray, max_height: float | None = None
) -> np.ndarray:
    """float [n]: min over guesses of cost[guess, truth]; a missing guess costs `max_height`."""
    cost, height = check_cost_matrix(cost, cost.shape[0], max_height)
    if labels.shape[1] == 0:
        return np.full(len(truth), height)
    guessed = labels >= 0
    per_guess = cost[np.where(guessed, labels, 0), truth[:, None]]
    return np.where(guessed, per_guess, height).min(axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes [..., 4] (xmin, ymin, xmax, ymax) on inclusive pixels, as the ILSVRC devkit does."""
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    return inter / (area_a + area_b - inter)


def localization_correct(
    labels: np.ndarray,
    boxes: np.ndarray,
    truth: np.ndarray,
    gt_boxes: np.ndarray,
    gt_offsets: np.ndarray,
    gt_box_labels: np.ndarray,
    iou_threshold: float = IOU_THRESHOLD,
) -> np.ndarray:
    """bool [n]: some guess has the true label and IoU >= threshold with a ground-truth box of that label.

    Only guesses with the right label are paired with the image's boxes, so the work is proportional to
    the boxes actually compared, not to n x 5 x (most boxes in any image).
    """
    n = len(truth)
    candidate = (labels == truth[:, None]) & ~np.isnan(boxes).any(axis=2)
    img, slot = np.nonzero(candidate)
    counts = np.diff(gt_offsets)[img]
    pair = np.repeat(np.arange(len(img)), counts)
    box = gt_offsets[img][pair] + (np.arange(len(pair)) - np.repeat(np.cumsum(counts) - counts, counts))
    guess_boxes = boxes[img, slot][pair]
    hit = (gt_box_labels[box] == truth[img][pair]) & (box_iou(guess_boxes, gt_boxes[box]) >= iou_threshold)
    correct = np.zeros(n, dtype=bool)
    correct[img[pair[hit]]] = True
    return correct


def per_class_accuracy(correct: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """float [n_classes]: share of each class's images scored correct; NaN for a class with no image."""
    images = np.bincount(truth, minlength=n_classes)
    hits = np.bincount(truth, weights=correct.astype(np.float64), minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / images


def confused_pairs(
    top1: np.ndarray, truth: np.ndarray, n_classes: int, limit: int = 10
) -> tuple[ConfusedPair, ...]:
    """The most frequent (truth, wrong top-1 guess) pairs; ties broken by truth then guess index."""
    wrong = (top1 >= 0) & (top1 != truth)
    keys = truth[wrong].astype(np.int64) * n_classes + top1[wrong]
    uniq, counts = np.unique(keys, return_counts=True)
    order = np.lexsort((uniq, -counts))[:limit]
    return tuple(
        ConfusedPair(int(k // n_classes), int(k % n_classes), int(c))
        for k, c in zip(uniq[order].tolist(), counts[order].tolist(), strict=True)
    )


def excluded_mask(image_ids: tuple[str, ...], exclude: Iterable[str] | np.ndarray | None) -> np.ndarray:
    """bool [n] of images to leave out, from ids or from a bool mask in `image_ids` order."""
    mask = np.zeros(len(image_ids), dtype=bool)
    if exclude is None:
        return mask
    if isinstance(exclude, np.ndarray) and exclude.dtype == bool:
        if exclude.shape != mask.shape:
            raise InputError(f"exclusion mask must have shape {mask.shape}, not {exclude.shape}")
        return exclude.copy()
    position = {image: i for i, image in enumerate(image_ids)}
    for image in exclude:
        i = position.get(str(image))
        if i is None:
            raise InputError(f"exclusion list: {image!r} is not a test image")
        mask[i] = True
    return mask


def score(
    submission: Submission,
    truth: GroundTruth,
    *,
    cost: np.ndarray | None = None,
    max_height: float | None = None,
    exclude: Iterable[str] | np.ndarray | None = None,
    iou_threshold: float = IOU_THRESHOLD,
    n_confused: int = 10,
) -> Scores:
    """Score a submission against the ground truth (same images, same order).

    `cost` (class x class LCA heights) turns on the hierarchical error; `max_height` is the largest
    possible height (default: the largest entry of `cost`). Localization is scored when both sides have
    boxes. `exclude` drops images (ids or a bool mask) from every metric.
    """
    if submission.image_ids != truth.image_ids:
        if set(submission.image_ids) != set(truth.image_ids):
            raise InputError("submission and ground truth cover different images")
        raise InputError("submission and ground truth list the images in a different order")
    n_classes = truth.n_classes
    labels = submission.labels
    if labels.size and labels.max() >= n_classes:
        raise InputError(f"submission: class index {int(labels.max())} is out of range 0..{n_classes - 1}")
    drop = excluded_mask(truth.image_ids, exclude)
    keep = ~drop
    if not keep.any():
        raise InputError("no image left to score")
    subset = None if not drop.any() else keep
    y = truth.labels if subset is None else truth.labels[subset]
    guesses = labels if subset is None else labels[subset]
    image_ids = (
        truth.image_ids if subset is None else tuple(np.asarray(truth.image_ids, dtype=object)[subset])
    )

    top1 = top_k_correct(guesses, y, 1)
    top5 = top_k_correct(guesses, y, 5)
    extra: dict[str, Any] = {}
    if cost is not None:
        cost, height = check_cost_matrix(cost, n_classes, max_height)
        h = hierarchical_costs(guesses, y, cost, height)
        raw = float(h.sum()) / len(h)
        extra.update(
            hierarchical_cost=h,
            hierarchical_error_raw=raw,
            hierarchical_error_normalized=raw / height,
            hierarchy_max_height=height,
        )
    if submission.boxes is not None and truth.boxes is not None:
        assert truth.box_offsets is not None and truth.box_labels is not None
        loc_all = localization_correct(
            labels,
            submission.boxes,
            truth.labels,
            truth.boxes,
            truth.box_offsets,
            truth.box_labels,
            iou_threshold,
        )
        loc = loc_all if subset is None else loc_all[subset]
        extra.update(
            localization_correct=loc,
            localization_error=error_rate(loc),
            per_class_localization_accuracy=per_class_accuracy(loc, y, n_classes),
        )
    return Scores(
        image_ids=image_ids,
        n_excluded=int(drop.sum()),
        top1_error=error_rate(top1),
        top5_error=error_rate(top5),
        top1_correct=top1,
        top5_correct=top5,
        per_class_images=np.bincount(y, minlength=n_classes),
        per_class_top1_accuracy=per_class_accuracy(top1, y, n_classes),
        per_class_top5_accuracy=per_class_accuracy(top5, y, n_classes),
        confused_pairs=confused_pairs(
            guesses[:, 0] if guesses.shape[1] else np.full(len(y), -1), y, n_classes, n_confused
        ),
        **extra,
    )
