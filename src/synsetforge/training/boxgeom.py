"""Box geometry between the three frames a localizing network works in, and the box losses.

- the image frame: pixels of the stored image (W x H), boxes ``[xmin, ymin, xmax, ymax]`` with inclusive
  corners, as releases freeze them and challenges score them (a box's continuous extent is
  ``[xmin, xmax + 1)``);
- the decoded frame: the S x S square `decode.to_square` makes of the image (`fit` crop, pad or stretch),
  in grid_sample's normalised coordinates ``[-1, 1]`` (align_corners=False: -1 is the left edge of pixel 0);
- the input frame: what the network sees (after augmentation or the centre crop), unit coordinates
  ``[0, 1]``; the box head predicts ``(cx, cy, w, h)`` there.

`augment.crop_params` gives each training image an affine map from output to decoded coordinates; a box
goes the other way through its inverse. A rotation turns a box into a rotated rectangle, whose enclosing
axis-aligned box becomes the target (looser than the rotated object's own box, never cutting it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SquareFit:
    """How `decode.to_square` placed one W x H image in the S x S square: x_sq = x * sx + ox (pixels)."""

    sx: float
    sy: float
    ox: float
    oy: float
    side: int

    @classmethod
    def of(cls, width: int, height: int, side: int, fit: str) -> SquareFit:
        """The placement `decode.to_square` uses (same rounding of the resized size and of the offsets)."""
        if fit == "stretch":
            return cls(side / width, side / height, 0.0, 0.0, side)
        scale = side / (min(width, height) if fit == "crop" else max(width, height))
        tw, th = max(1, round(width * scale)), max(1, round(height * scale))
        if fit == "crop":
            ox, oy = -((tw - side) // 2), -((th - side) // 2)
        elif fit == "pad":
            ox, oy = (side - tw) // 2, (side - th) // 2
        else:
            raise ValueError(f"fit must be crop, pad or stretch, not {fit!r}")
        return cls(tw / width, th / height, float(ox), float(oy), side)

    def to_decoded(self, box: tuple[float, float, float, float] | np.ndarray) -> np.ndarray:
        """Inclusive image-pixel box -> decoded-frame box [x1, y1, x2, y2] in [-1, 1] (continuous edges)."""
        x1, y1, x2, y2 = (float(v) for v in box)
        xs = np.asarray([x1, x2 + 1.0]) * self.sx + self.ox
        ys = np.asarray([y1, y2 + 1.0]) * self.sy + self.oy
        return np.asarray([xs[0], ys[0], xs[1], ys[1]]) * (2.0 / self.side) - 1.0

    def from_decoded(self, box: np.ndarray, width: int, height: int) -> np.ndarray:
        """Decoded-frame boxes [..., 4] in [-1, 1] -> inclusive image-pixel boxes, clipped to the image."""
        b = (np.asarray(box, dtype=np.float64) + 1.0) * (self.side / 2.0)
        x1 = (b[..., 0] - self.ox) / self.sx
        y1 = (b[..., 1] - self.oy) / self.sy
        x2 = (b[..., 2] - self.ox) / self.sx - 1.0
        y2 = (b[..., 3] - self.oy) / self.sy - 1.0
        x1, x2 = np.clip(np.round(x1), 0, width - 1), np.clip(np.round(x2), 0, width - 1)
        y1, y2 = np.clip(np.round(y1), 0, height - 1), np.clip(np.round(y2), 0, height - 1)
        return np.stack([x1, y1, np.maximum(x1, x2), np.maximum(y1, y2)], axis=-1)


def centre_crop_to_decoded(unit_xyxy: np.ndarray, side: int, size: int) -> np.ndarray:
    """Boxes in the input frame of evaluation (the centre `size` px of the S px square), unit [0, 1]
    coordinates -> decoded frame [-1, 1]; the same crop as `augment.eval_transform`."""
    o = (side - size) // 2
    return (o + np.asarray(unit_xyxy, dtype=np.float64) * size) * (2.0 / side) - 1.0


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def xyxy_to_cxcywh(b: torch.Tensor) -> torch.Tensor:
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def augment_boxes(theta: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded-frame boxes [B, 4] (NaN rows: no box) through the affine maps `theta` [B, 2, 3] that
    `augment.train_transform` samples with (output -> input). Returns the boxes in the augmented image's
    unit frame [B, 4] (xyxy, clipped to the image) and each row's weight in the box loss [B]: 0 for a box
    that left the crop or a row without one; for a rotation by a, cos(2a)^2, which is 1 where the box
    enclosing the rotated box is exact (multiples of 90 degrees) and 0 at 45 degrees, where it is looser
    than the object by up to half its area (training on those made the head's boxes loose)."""
    theta = theta.to(torch.float64)
    a, t = theta[:, :, :2], theta[:, :, 2]
    inv = torch.linalg.inv(a)  # [B, 2, 2]
    b = boxes.to(torch.float64)
    corners = torch.stack(
        [b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], dim=1
    )  # [B, 4 corners, 2] in decoded coordinates
    out = torch.einsum("bij,bkj->bki", inv, corners - t[:, None, :])
    lo, hi = out.amin(dim=1), out.amax(dim=1)
    unit = (torch.cat([lo, hi], dim=1).clamp(-1.0, 1.0) + 1.0) / 2.0
    valid = torch.isfinite(b).all(dim=1) & (unit[:, 2] > unit[:, 0]) & (unit[:, 3] > unit[:, 1])
    angle = torch.atan2(-a[:, 0, 1], a[:, 1, 1])  # the second column is h * (-sin a, cos a), flip or not
    weight = torch.where(valid, torch.cos(2 * angle) ** 2, 0.0)
    return torch.nan_to_num(unit, nan=0.0).float(), weight.float()


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU (Rezatofighi et al. 2019) of xyxy boxes [..., 4] on continuous coordinates."""
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    union = area_a + area_b - inter
    iou = inter / union.clamp(min=1e-9)
    cw = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    ch = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    hull = (cw * ch).clamp(min=1e-9)
    return iou - (hull - union) / hull


def box_loss(pred_cxcywh: torch.Tensor, target_xyxy: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean over the rows of smooth-L1 on (cx, cy, w, h) plus 1 - GIoU (unit frame); rows of
    weight 0 (no usable target) do not count."""
    weight = weight.to(pred_cxcywh.device).float()
    keep = weight > 0
    if not bool(keep.any()):
        return pred_cxcywh.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) whole
    p, t = pred_cxcywh[keep].float(), target_xyxy[keep].to(pred_cxcywh.device).float()
    l1 = torch.nn.functional.smooth_l1_loss(p, xyxy_to_cxcywh(t), beta=0.05, reduction="none").sum(-1)
    per_row = l1 + (1.0 - giou(cxcywh_to_xyxy(p), t))
    w = weight[keep]
    return (per_row * w).sum() / w.sum().clamp(min=1e-6)
