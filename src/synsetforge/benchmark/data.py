"""The dense arrays every scorer consumes: classes, a submission, the ground truth.

They are plain frozen dataclasses over numpy arrays so that a parser, a store or a test can build them
directly; validation happens once, here, and the metrics can then trust shapes and ranges.
Class indices are 0-based everywhere (ILSVRC2012_ID - 1); -1 means "no guess".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from synsetforge.errors import InputError

MAX_GUESSES = 5
"""ILSVRC takes at most 5 guesses per image, in descending confidence."""

NO_GUESS = -1


def check_image_ids(image_ids: Sequence[str], what: str) -> tuple[str, ...]:
    """A tuple of distinct image ids: rows of every array are keyed by it."""
    ids = tuple(image_ids)
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        for i in ids:
            if i in seen:
                raise InputError(f"{what}: image id {i!r} appears twice")
            seen.add(i)
    return ids


@dataclass(frozen=True, eq=False)
class ClassList:
    """The classes of a challenge; position i is ILSVRC2012_ID i+1 (`LOC_synset_mapping.txt` order)."""

    wnids: tuple[str, ...]
    names: tuple[str, ...] | None = None
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        wnids = tuple(self.wnids)
        object.__setattr__(self, "wnids", wnids)
        if not wnids:
            raise InputError("a challenge needs at least one class")
        for w in wnids:
            if not w or any(c.isspace() or c == "," for c in w):
                raise InputError(f"class id {w!r} is empty or holds a space or comma")
        index = {w: i for i, w in enumerate(wnids)}
        if len(index) != len(wnids):
            dup = next(w for i, w in enumerate(wnids) if index[w] != i)
            raise InputError(f"class id {dup!r} appears twice")
        if self.names is not None and len(self.names) != len(wnids):
            raise InputError(f"{len(self.names)} class names for {len(wnids)} classes")
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.wnids)

    @property
    def index(self) -> dict[str, int]:
        """wnid -> 0-based class index (read-only by convention)."""
        return self._index

    def index_of(self, wnid: str) -> int:
        try:
            return self._index[wnid]
        except KeyError:
            raise InputError(f"{wnid!r} is not a class id of this challenge") from None


@dataclass(frozen=True, eq=False)
class Submission:
    """Up to 5 ranked guesses per image, optionally with one box each.

    labels: int32 [n_images, k] class indices, -1 padding at the end; boxes: float64 [n_images, k, 4]
    (xmin, ymin, xmax, ymax, inclusive pixels), NaN where there is no guess or the guess has no box.
    """

    image_ids: tuple[str, ...]
    labels: np.ndarray
    boxes: np.ndarray | None = None

    def __post_init__(self) -> None:
        ids = check_image_ids(self.image_ids, "submission")
        labels = np.asarray(self.labels)
        if labels.ndim != 2 or labels.shape[0] != len(ids):
            raise InputError(f"submission: labels must have shape ({len(ids)}, k), not {labels.shape}")
        if labels.size and (
            not np.issubdtype(labels.dtype, np.integer)
            or labels.min() < NO_GUESS
            or labels.max() > np.iinfo(np.int32).max
        ):
            raise InputError("submission: labels must be integer class indices, -1 for no guess")
        object.__setattr__(self, "image_ids", ids)
        object.__setattr__(self, "labels", labels.astype(np.int32, copy=False))
        if self.boxes is not None:
            boxes = np.asarray(self.boxes, dtype=np.float64)
            if boxes.shape != (*labels.shape, 4):
                raise InputError(f"submission: boxes must have shape {(*labels.shape, 4)}, not {boxes.shape}")
            nan = np.isnan(boxes)
            bad = _bad_boxes(boxes) & ~nan.all(axis=2) & (labels >= 0)
            if bad.any():
                i, k = np.argwhere(bad)[0].tolist()
                raise InputError(
                    f"submission: box {boxes[i, k].tolist()} of guess {k + 1} for image {ids[i]!r} "
                    "is not finite, negative or inverted"
                )
            object.__setattr__(self, "boxes", boxes)


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """One true class per image and, for localization, any number of boxes per image.

    Boxes are stored ragged (CSR) because a few images hold dozens of objects while most hold one:
    image i owns boxes[box_offsets[i]:box_offsets[i+1]] with labels box_labels[...] (default: the image's
    class). Use `from_padded` for [n, k, 4] arrays with a mask.
    """

    image_ids: tuple[str, ...]
    labels: np.ndarray
    n_classes: int
    boxes: np.ndarray | None = None
    box_offsets: np.ndarray | None = None
    box_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        ids = check_image_ids(self.image_ids, "ground truth")
        n = len(ids)
        labels = np.asarray(self.labels)
        if labels.shape != (n,) or (n and not np.issubdtype(labels.dtype, np.integer)):
            raise InputError(f"ground truth: labels must be {n} integer class indices, not {labels.shape}")
        if self.n_classes < 1:
            raise InputError("ground truth: n_classes must be positive")
        if n and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise InputError(f"ground truth: class indices must lie in 0..{self.n_classes - 1}")
        object.__setattr__(self, "image_ids", ids)
        object.__setattr__(self, "labels", labels.astype(np.int32, copy=False))
        if self.boxes is None:
            if self.box_offsets is not None or self.box_labels is not None:
                raise InputError("ground truth: box_offsets/box_labels given without boxes")
            return
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if self.box_offsets is None:
            raise InputError("ground truth: boxes need box_offsets")
        offsets = np.asarray(self.box_offsets, dtype=np.int64)
        if (
            offsets.shape != (n + 1,)
            or offsets[0] != 0
            or offsets[-1] != len(boxes)
            or (np.diff(offsets) < 0).any()
        ):
            raise InputError(
                "ground truth: box_offsets must rise from 0 to the number of boxes, one step per image"
            )
        check_boxes(boxes, "ground truth")
        if self.box_labels is None:
            box_labels = np.repeat(labels.astype(np.int32), np.diff(offsets))
        else:
            box_labels = np.asarray(self.box_labels).astype(np.int32)
            if box_labels.shape != (len(boxes),):
                raise InputError("ground truth: one box label per box")
            if len(box_labels) and (box_labels.min() < 0 or box_labels.max() >= self.n_classes):
                raise InputError(f"ground truth: box labels must lie in 0..{self.n_classes - 1}")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "box_offsets", offsets)
        object.__setattr__(self, "box_labels", box_labels)

    @classmethod
    def from_padded(
        cls,
        image_ids: Sequence[str],
        labels: Iterable[int] | np.ndarray,
        n_classes: int,
        boxes: np.ndarray,
        mask: np.ndarray | None = None,
        box_labels: np.ndarray | None = None,
    ) -> GroundTruth:
        """Build from padded boxes [n, k, 4]; `mask` [n, k] marks real boxes (default: rows without NaN)."""
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.ndim != 3 or boxes.shape[2] != 4:
            raise InputError(f"ground truth: padded boxes must have shape (n, k, 4), not {boxes.shape}")
        keep = ~np.isnan(boxes).any(axis=2) if mask is None else np.asarray(mask, dtype=bool)
        if keep.shape != boxes.shape[:2]:
            raise InputError(f"ground truth: mask must have shape {boxes.shape[:2]}, not {keep.shape}")
        offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
        flat_labels = None if box_labels is None else np.asarray(box_labels)[keep]
        return cls(tuple(image_ids), np.asarray(labels), n_classes, boxes[keep], offsets, flat_labels)

    @property
    def has_boxes(self) -> bool:
        return self.boxes is not None


def _bad_boxes(boxes: np.ndarray) -> np.ndarray:
    """bool [...]: the box [..., 4] is not finite, has a negative coordinate or is inverted."""
    bad = ~np.isfinite(boxes).all(axis=-1) | (boxes < 0).any(axis=-1)
    return bad | (boxes[..., 0] > boxes[..., 2]) | (boxes[..., 1] > boxes[..., 3])


def check_boxes(boxes: np.ndarray, what: str) -> None:
    """Boxes must be finite, non-negative and not inverted (xmin <= xmax, ymin <= ymax)."""
    if not len(boxes):
        return
    bad = _bad_boxes(boxes)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{what}: box {i} {boxes[i].tolist()} is not finite, negative or inverted")
