"""Box gold: known answers for all three box tasks, made from ground-truth boxes (`synsetforge boxes gold`).

From each chosen image (a stored candidate whose ground truth lists its instances' boxes):
- draw gold: all true boxes but one are shown as already accepted; a drawing is right when its IoU with
  the hidden one reaches `gold_iou` (every fourth image hides none: then "none left" is right);
- quality gold: one good box (a true box, its edges moved by at most 3% of its side) and one bad box (a
  true box shifted or shrunk until its IoU with every instance is under 0.4), origin "gold"; each showing
  in a grid is a fresh copy of one of them (`assign.copy_gold_box`), so box ids do not tell gold apart, and
  a worker judges at most one gold box per gold image;
- coverage gold: all true boxes shown (covered), or, on images with two or more instances, alternately all
  but one (not covered).
A gold image leaves the crowd pipeline (`box_images.stage = "gold"`); workers see gold items exactly like
any other and never learn which they were.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from synsetforge.boxes.geometry import Box, best_iou, iou
from synsetforge.errors import InputError
from synsetforge.store import schema
from synsetforge.store.project import Project

BAD_IOU = 0.4


@dataclass(frozen=True)
class GoldAdded:
    images: int
    draw: int
    covered: int
    uncovered: int
    good_boxes: int
    bad_boxes: int

    def line(self) -> str:
        return (
            f"box gold: {self.images} images; draw {self.draw}, coverage {self.covered} covered + "
            f"{self.uncovered} not covered, quality {self.good_boxes} good + {self.bad_boxes} bad boxes"
        )


def _clip(box: Sequence[float], w: int, h: int) -> Box:
    x1 = int(min(max(round(box[0]), 0), w - 1))
    y1 = int(min(max(round(box[1]), 0), h - 1))
    x2 = int(min(max(round(box[2]), x1), w - 1))
    y2 = int(min(max(round(box[3]), y1), h - 1))
    return (x1, y1, x2, y2)


def good_variant(box: Box, w: int, h: int, rng: random.Random) -> Box:
    """A true box with each edge moved by at most 3% of the box's side (IoU stays above ~0.88)."""
    bw, bh = box[2] - box[0] + 1, box[3] - box[1] + 1
    jitter = [rng.uniform(-0.03, 0.03) * s for s in (bw, bh, bw, bh)]
    return _clip([v + d for v, d in zip(box, jitter, strict=True)], w, h)


def bad_variant(box: Box, truth: Sequence[Box], w: int, h: int, rng: random.Random) -> Box | None:
    """A perturbed true box with IoU < 0.4 against every instance (shifted, shrunk or grown); None if no
    such box fits in the image."""
    bw, bh = box[2] - box[0] + 1, box[3] - box[1] + 1
    for _ in range(50):
        how = rng.choice(("shift", "shrink", "grow"))
        if how == "shift":
            dx, dy = (
                rng.choice((-1, 1)) * rng.uniform(0.6, 1.0) * bw,
                rng.choice((-1, 1)) * rng.uniform(0, 0.6) * bh,
            )
            cand = _clip((box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy), w, h)
        elif how == "shrink":
            f = rng.uniform(0.25, 0.5)
            cx, cy = rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])
            cand = _clip((cx - f * bw / 2, cy - f * bh / 2, cx + f * bw / 2, cy + f * bh / 2), w, h)
        else:
            cand = _clip((box[0] - bw, box[1] - bh, box[2] + bw, box[3] + bh), w, h)
        if cand[2] - cand[0] >= 2 and cand[3] - cand[1] >= 2 and best_iou(cand, truth) < BAD_IOU:
            return cand
    return None


def make_box_gold(
    s: Session, cid: int, truth: Sequence[Box], size: tuple[int, int], k: int, rng: random.Random
) -> tuple[int, int, int, int, int]:
    """Gold questions of all three kinds on one image; returns (draw, covered, uncovered, good, bad)."""
    w, h = size
    hide = [] if k % 4 == 3 else [rng.randrange(len(truth))]
    s.add(
        schema.BoxGold(
            candidate_id=cid,
            kind="draw",
            shown=[list(t) for i, t in enumerate(truth) if i not in hide],
            hidden=[list(truth[i]) for i in hide],
            answer=bool(hide),
        )
    )
    covered = len(truth) < 2 or k % 2 == 0
    dropped = -1 if covered else rng.randrange(len(truth))
    s.add(
        schema.BoxGold(
            candidate_id=cid,
            kind="coverage",
            shown=[list(t) for i, t in enumerate(truth) if i != dropped],
            hidden=[] if covered else [list(truth[dropped])],
            answer=covered,
        )
    )
    target = truth[rng.randrange(len(truth))]
    boxes = [(good_variant(target, w, h, rng), "good")]
    bad = bad_variant(target, truth, w, h, rng)
    if bad is not None:
        boxes.append((bad, "bad"))
    now = datetime.now(UTC)
    for box, status in boxes:
        s.add(
            schema.BoxRow(
                candidate_id=cid, x1=box[0], y1=box[1], x2=box[2], y2=box[3], origin="gold", status=status,
                confidence=1.0, created_at=now,
            )
        )  # fmt: skip
    return 1, int(covered), int(not covered), 1, int(bad is not None)


def gold_from_ground_truth(project: Project, per_synset: int = 10, seed: int = 0) -> GoldAdded:
    """Make box gold on `per_synset` images per synset (multi-instance images first, so that coverage has
    'not covered' answers) among stored positive candidates with ground-truth boxes that no box work has
    touched yet (no boxes, not drawn on, not held by a task). Returns what was added."""
    if per_synset < 1:
        raise InputError(f"per_synset must be >= 1, got {per_synset}")
    rng = random.Random(seed)
    c, gt, i, bi, b = schema.Candidate, schema.GroundTruth, schema.Image, schema.BoxImage, schema.BoxRow
    totals = [0, 0, 0, 0, 0, 0]
    now = datetime.now(UTC)
    # an image already in the box pipeline may still become gold while nobody has drawn on it or holds it
    untouched = (bi.stage == "draw") & (bi.draws == 0) & (bi.held_until.is_(None) | (bi.held_until <= now))
    with project.session() as s:
        rows = s.execute(
            select(c.synset_id, c.id, gt.boxes, i.orig_width, i.orig_height, i.width, i.height)
            .join(gt, gt.candidate_id == c.id)
            .join(i, i.id == c.image_id)
            .where(
                c.status == "stored",
                gt.positive.is_(True),
                ~exists().where(bi.candidate_id == c.id, ~untouched),
                ~exists().where(b.candidate_id == c.id),
            )
            .order_by(c.synset_id, c.id)
        ).all()
        by_synset: dict[str, list[tuple[int, list[Box], tuple[int, int]]]] = {}
        for sid, cid, boxes, ow, oh, w, hh in rows:
            size = (int(ow or w or 0), int(oh or hh or 0))
            truth: list[Box] = [
                (int(t[0]), int(t[1]), int(t[2]), int(t[3]))
                for t in (boxes or [])
                if len(t) == 4 and 0 <= t[0] <= t[2] < size[0] and 0 <= t[1] <= t[3] < size[1]
            ]
            if truth:
                by_synset.setdefault(str(sid), []).append((int(cid), truth, size))
        for sid, images in sorted(by_synset.items()):
            rng.shuffle(images)
            images.sort(key=lambda item: -min(len(item[1]), 2))  # multi-instance first
            for k, (cid, truth, size) in enumerate(images[:per_synset]):
                s.merge(
                    schema.BoxImage(
                        candidate_id=cid,
                        synset_id=sid,
                        stage="gold",
                        round=0,
                        draws=0,
                        updated_at=now,
                        held_task_id=None,
                        held_until=None,
                    )
                )
                added = make_box_gold(s, cid, truth, size, k, rng)
                totals[0] += 1
                for j, n in enumerate(added, start=1):
                    totals[j] += n
    return GoldAdded(*totals)


def draw_answer_right(spec: schema.BoxGold, box: Box | None, gold_iou: float) -> bool:
    """Whether a draw answer on a gold image is right: a box matching a hidden instance, or "none left"
    when nothing is hidden."""
    hidden = [tuple(int(v) for v in t) for t in spec.hidden]
    if box is None:
        return not hidden
    return any(iou(box, t) >= gold_iou for t in hidden)
