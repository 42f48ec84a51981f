"""Box geometry for the crowd engine: IoU, checks on a drawn box, and the served <-> original pixel frames.

Boxes are `[x1, y1, x2, y2]` with inclusive corners like ILSVRC (a box covers pixels x1..x2, so its
continuous extent is `[x1, x2 + 1)`). The store keeps boxes in pixels of the original image; workers see
the image as served (`images.width` x `images.height`), and the API speaks that frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from synsetforge.errors import InputError

Box = tuple[int, int, int, int]


def area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0] + 1) * max(0.0, box[3] - box[1] + 1)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two inclusive-corner boxes (0 when they do not overlap)."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / (area(a) + area(b) - inter))


def best_iou(box: Sequence[float], others: Sequence[Sequence[float]]) -> float:
    return max((iou(box, o) for o in others), default=0.0)


def check_served(box: Sequence[float], width: int, height: int, min_px: float) -> None:
    """Refuse (InputError) a drawn box that is not 4 finite numbers, has no size, or leaves the image."""
    if len(box) != 4:
        raise InputError(f"a box is 4 numbers [x1, y1, x2, y2], got {len(box)}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box):
        raise InputError("box coordinates must be finite numbers")
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise InputError(f"box {list(box)} has zero or negative size (x2 must exceed x1 and y2 exceed y1)")
    if x2 - x1 + 1 < min_px or y2 - y1 + 1 < min_px:
        raise InputError(f"box {list(box)} is smaller than {min_px:g} pixels")
    if x1 < 0 or y1 < 0 or x2 > width - 1 or y2 > height - 1:
        raise InputError(
            f"box {list(box)} leaves the {width}x{height} image (corners are pixels 0..{width - 1}, "
            f"0..{height - 1})"
        )


def frames(
    width: int | None, height: int | None, orig_width: int | None, orig_height: int | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(served size, original size) of an image row; an image without a known size cannot take boxes."""
    if not width or not height:
        raise InputError("this image has no recorded size, so it cannot take boxes")
    return (int(width), int(height)), (int(orig_width or width), int(orig_height or height))


def to_original(box: Sequence[float], size: tuple[int, int], orig: tuple[int, int]) -> Box:
    """A served-frame box in original pixels (continuous extents scaled, then rounded to pixels)."""
    sx, sy = orig[0] / size[0], orig[1] / size[1]
    x1 = min(max(round(box[0] * sx), 0), orig[0] - 1)
    y1 = min(max(round(box[1] * sy), 0), orig[1] - 1)
    x2 = min(max(round((box[2] + 1) * sx) - 1, x1), orig[0] - 1)
    y2 = min(max(round((box[3] + 1) * sy) - 1, y1), orig[1] - 1)
    return (x1, y1, x2, y2)


def to_served(box: Sequence[int], size: tuple[int, int], orig: tuple[int, int]) -> list[float]:
    """An original-pixel box in the served frame (integers when the image is served at full size)."""
    if size == orig:
        return [int(v) for v in box]
    sx, sy = size[0] / orig[0], size[1] / orig[1]
    return [
        round(box[0] * sx, 2),
        round(box[1] * sy, 2),
        round((box[2] + 1) * sx - 1, 2),
        round((box[3] + 1) * sy - 1, 2),
    ]
