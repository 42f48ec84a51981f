"""Scoring box protocols against ground truth, and the two simple protocols the engine is compared with.

Why in-process: the simple protocols have no verification, so there is nothing for a server to decide;
they take the same simulated crowd (`boxes.crowdsim`) and the same images as the engine's HTTP run:
- one drawer per instance: a drawer at a time boxes one more instance, every box is kept, until a drawer
  says none is left (or `max_draws` tasks);
- k drawers per instance (k = 3): each round k drawers are asked for the same not-yet-boxed instance; the
  edge-wise median of their boxes is kept; the image is finished when most of them say none is left.
Scores (`ProtocolResult`): images fully covered (every instance found by a kept box at IoU >= 0.5), kept
boxes at IoU >= 0.5 and >= 0.7 with their best instance, drawing tasks per kept box, votes per decided box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from synsetforge.boxes.crowdsim import FOUND_IOU, TIGHT_IOU, Rect, SimulatedBoxCrowd, median_box, unboxed
from synsetforge.boxes.geometry import iou


@dataclass(frozen=True)
class ImageTruth:
    """One image's true boxes in the frame the workers see (served pixels, inclusive corners)."""

    candidate_id: int
    size: tuple[int, int]
    boxes: tuple[Rect, ...]


@dataclass(frozen=True)
class Score:
    """Kept boxes against the truth of a set of images."""

    images: int = 0
    instances: int = 0
    covered: int = 0
    boxes: int = 0
    iou50: int = 0
    iou70: int = 0
    duplicates: int = 0  # kept boxes on an instance an earlier kept box had already found


def score(pairs: Sequence[tuple[Sequence[Sequence[float]], Sequence[Sequence[float]]]]) -> Score:
    """Score (truth boxes, kept boxes in the order kept) per image."""
    images = instances = covered = boxes = iou50 = iou70 = duplicates = 0
    for truth, kept in pairs:
        images += 1
        instances += len(truth)
        covered += not unboxed(truth, kept)
        found: set[int] = set()
        for box in kept:
            boxes += 1
            ious = [iou(box, t) for t in truth]
            best = max(ious, default=0.0)
            iou50 += best >= FOUND_IOU
            iou70 += best >= TIGHT_IOU
            if best >= FOUND_IOU:
                which = ious.index(best)
                duplicates += which in found
                found.add(which)
    return Score(images, instances, covered, boxes, iou50, iou70, duplicates)


def _share(num: int, den: int) -> float:
    return num / den if den else math.nan


@dataclass(frozen=True)
class ProtocolResult:
    """What one protocol cost and how right it was (votes only for protocols that verify)."""

    protocol: str
    score: Score
    draw_tasks: int
    gold_draw_tasks: int = 0
    quality_votes: int = 0
    coverage_votes: int = 0  # votes in coverage tasks ("none left" draw answers are draw tasks)
    decided_boxes: int = 0
    gold_votes: int = 0  # answers to gold items in quality and coverage tasks
    unfinished: int = 0  # images the protocol left open (engine: not covered and not given up)
    kept: tuple[tuple[Sequence[float], ...], ...] = field(default=(), repr=False)  # per image, in order

    @property
    def coverage(self) -> float:
        return _share(self.score.covered, self.score.images)

    @property
    def iou50_share(self) -> float:
        return _share(self.score.iou50, self.score.boxes)

    @property
    def iou70_share(self) -> float:
        return _share(self.score.iou70, self.score.boxes)

    @property
    def draw_tasks_per_box(self) -> float:
        return _share(self.draw_tasks, self.score.boxes)

    @property
    def votes_per_decided_box(self) -> float:
        """Quality votes per box the quality votes decided (accepted or rejected)."""
        return _share(self.quality_votes, self.decided_boxes)

    @property
    def votes_per_box(self) -> float:
        """Every verification vote (quality and coverage tasks) per kept box: the cost beside drawing."""
        return _share(self.quality_votes + self.coverage_votes, self.score.boxes)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {k: v for k, v in asdict(self).items() if k not in ("score", "kept")}
        out.update(asdict(self.score))
        for name in (
            "coverage",
            "iou50_share",
            "iou70_share",
            "draw_tasks_per_box",
            "votes_per_decided_box",
            "votes_per_box",
        ):
            value = getattr(self, name)
            out[name] = None if value != value else value
        return out


def one_drawer(images: Sequence[ImageTruth], crowd: SimulatedBoxCrowd, max_draws: int = 8) -> ProtocolResult:
    """One drawer per instance, no verification (see the module docstring)."""
    tasks = 0
    pairs = []
    for image in images:
        kept: list[Sequence[float]] = []
        for _ in range(max_draws):
            worker = crowd.workers[int(crowd.rng.integers(len(crowd.workers)))]
            box = crowd.draw(worker, image.boxes, kept, image.size)
            tasks += 1
            if box is None:
                break
            kept.append(box)
        pairs.append((image.boxes, kept))
    kept_all = tuple(tuple(kept) for _, kept in pairs)
    return ProtocolResult("one drawer per instance, no verification", score(pairs), tasks, kept=kept_all)


def median_drawers(
    images: Sequence[ImageTruth], crowd: SimulatedBoxCrowd, drawers: int = 3, max_rounds: int = 8
) -> ProtocolResult:
    """`drawers` drawers per instance, the median box kept (see the module docstring)."""
    tasks = 0
    pairs = []
    for image in images:
        kept: list[Sequence[float]] = []
        for _ in range(max_rounds):
            left = unboxed(image.boxes, kept)
            target = int(crowd.rng.choice(left)) if left else None
            chosen = crowd.rng.choice(len(crowd.workers), size=drawers, replace=False)
            answers = [
                crowd.draw(crowd.workers[int(j)], image.boxes, kept, image.size, target) for j in chosen
            ]
            tasks += drawers
            drawn = [a for a in answers if a is not None]
            if 2 * len(drawn) <= drawers:
                break
            kept.append(median_box(drawn, image.size))
        pairs.append((image.boxes, kept))
    kept_all = tuple(tuple(kept) for _, kept in pairs)
    return ProtocolResult(f"{drawers} drawers per instance, median box", score(pairs), tasks, kept=kept_all)
