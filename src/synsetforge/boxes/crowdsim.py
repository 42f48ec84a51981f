"""A simulated box crowd: drawers who jitter, scribble, miss and spam, and verifiers of known accuracy.

Why: SPEC §4's figures (97.9% of images covered, 99.2% of accepted boxes accurate) are claims about a
whole protocol run by imperfect people; they can only be checked offline against known boxes. The same
crowd answers the engine's tasks over HTTP (`boxes.simulate`) and the two simple protocols here, so the
comparison is like for like.

Worker model (every rate an option; defaults = the floor issue 11 sets):
- an honest drawer asked for a new instance boxes one not yet boxed (IoU < 0.5 with every accepted box),
  each edge moved by a normal of sigma `jitter` x the box's side; `sloppy` of their drawings instead have
  IoU < 0.5 with every instance (shifted, shrunk, grown or elsewhere); in `miss` of their tasks with an
  instance left they miss it: half the time "none left", half a box on an instance already boxed (always
  "none left" when nothing is boxed yet). With nothing left they say so.
- an honest verifier answers right with their own accuracy (Beta around `accuracy`, strength
  `concentration`); tight = IoU >= 0.7 with some instance, covered = every instance has a box at IoU >= 0.5.
- `spammers` of the workers spam every kind of task: as drawers "none left" or a random box (half and
  half), as verifiers ticking everything or at random (half of the spammers each).
Coordinates are inclusive-corner pixels of the image as the worker sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from synsetforge.boxes.geometry import best_iou
from synsetforge.errors import InputError

Rect = tuple[float, float, float, float]
Kind = Literal["honest", "always_yes", "random"]
TIGHT_IOU = 0.7  # a tight box: IoU >= 0.7 with some instance (SPEC §4, the gold rule)
FOUND_IOU = 0.5  # an instance counts as boxed by a box at IoU >= 0.5 (PASCAL's rule)
SLOPPY_IOU = 0.5  # a sloppy drawing has IoU below this with every instance
MIN_SIDE = 3.0  # pixels: the smallest box a simulated drawer submits


@dataclass(frozen=True)
class CrowdModel:
    """The simulated crowd's rates (see the module docstring)."""

    workers: int = 40
    jitter: float = 0.05
    sloppy: float = 0.15
    miss: float = 0.10
    accuracy: float = 0.85
    concentration: float = 20.0
    spammers: float = 0.10

    def __post_init__(self) -> None:
        checks = [
            (self.workers >= 4, "workers must be >= 4"),
            (0.0 <= self.jitter <= 0.5, "jitter must be in [0, 0.5]"),
            (0.0 <= self.sloppy <= 1.0, "sloppy must be in [0, 1]"),
            (0.0 <= self.miss <= 1.0, "miss must be in [0, 1]"),
            (0.5 <= self.accuracy < 1.0, "accuracy must be in [0.5, 1)"),
            (self.concentration > 0, "concentration must be > 0"),
            (0.0 <= self.spammers <= 0.9, "spammers must be in [0, 0.9]"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"simulated box crowd: {message}")

    def describe(self) -> str:
        return (
            f"{self.workers} workers, {self.spammers:.0%} spammers; drawers: edges jittered by "
            f"N(0, {self.jitter:.0%} of the side), {self.sloppy:.0%} of drawings sloppy (IoU < 0.5 with "
            f"every instance), {self.miss:.0%} miss an instance; verifiers: mean accuracy {self.accuracy:.2f}"
        )


@dataclass(frozen=True)
class BoxWorker:
    """One simulated person; does drawing and both verifications."""

    worker_id: str
    kind: Kind
    accuracy: float


def make_crowd(model: CrowdModel, seed: int = 0) -> list[BoxWorker]:
    """`model.workers` workers: accuracies ~ Beta(mean c, (1 - mean) c), `spammers` of them spammers."""
    rng = np.random.default_rng(seed)
    acc = rng.beta(
        model.accuracy * model.concentration, (1 - model.accuracy) * model.concentration, model.workers
    )
    n_spam = round(model.workers * model.spammers)
    counts: list[tuple[Kind, int]] = [
        ("always_yes", n_spam // 2),
        ("random", n_spam - n_spam // 2),
        ("honest", model.workers - n_spam),
    ]
    kinds = [kind for kind, k in counts for _ in range(k)]
    order = rng.permutation(model.workers)
    width = len(str(model.workers - 1))
    return [BoxWorker(f"b{i:0{width}d}", kinds[order[i]], float(acc[i])) for i in range(model.workers)]


def _clip(box: Sequence[float], size: tuple[int, int]) -> Rect:
    """A valid box inside the image: ordered corners, at least MIN_SIDE pixels, whole pixels."""
    w, h = size
    x1, x2 = sorted((float(box[0]), float(box[2])))
    y1, y2 = sorted((float(box[1]), float(box[3])))
    x1, y1 = min(max(round(x1), 0), w - MIN_SIDE), min(max(round(y1), 0), h - MIN_SIDE)
    x2, y2 = min(max(round(x2), x1 + MIN_SIDE - 1), w - 1), min(max(round(y2), y1 + MIN_SIDE - 1), h - 1)
    return (float(x1), float(y1), float(x2), float(y2))


def jittered(box: Sequence[float], size: tuple[int, int], sigma: float, rng: np.random.Generator) -> Rect:
    """The box with each edge moved by N(0, sigma x the box's side)."""
    bw, bh = box[2] - box[0] + 1, box[3] - box[1] + 1
    d = rng.normal(0.0, sigma, 4) * [bw, bh, bw, bh]
    return _clip([box[i] + d[i] for i in range(4)], size)


def random_box(size: tuple[int, int], rng: np.random.Generator) -> Rect:
    w, h = size
    xs, ys = rng.uniform(0, w - 1, 2), rng.uniform(0, h - 1, 2)
    return _clip((xs.min(), ys.min(), xs.max(), ys.max()), size)


def sloppy_box(
    target: Sequence[float], truth: Sequence[Sequence[float]], size: tuple[int, int], rng: np.random.Generator
) -> Rect:
    """A drawing near `target` with IoU < SLOPPY_IOU against every instance (a random box if none fits)."""
    bw, bh = target[2] - target[0] + 1, target[3] - target[1] + 1
    cx, cy = (target[0] + target[2]) / 2, (target[1] + target[3]) / 2
    for _ in range(40):
        how = rng.integers(0, 3)
        if how == 0:  # slid off the instance
            dx, dy = rng.uniform(0.5, 1.0) * bw * rng.choice([-1, 1]), rng.uniform(-0.5, 0.5) * bh
            if rng.random() < 0.5:
                dx, dy = rng.uniform(-0.5, 0.5) * bw, rng.uniform(0.5, 1.0) * bh * rng.choice([-1, 1])
            cand = _clip((target[0] + dx, target[1] + dy, target[2] + dx, target[3] + dy), size)
        elif how == 1:  # a part of it
            f = rng.uniform(0.2, 0.6)
            px, py = rng.uniform(target[0], target[2]), rng.uniform(target[1], target[3])
            cand = _clip((px - f * bw / 2, py - f * bh / 2, px + f * bw / 2, py + f * bh / 2), size)
        else:  # far too big
            g = rng.uniform(1.6, 3.0)
            cand = _clip((cx - g * bw / 2, cy - g * bh / 2, cx + g * bw / 2, cy + g * bh / 2), size)
        if best_iou(cand, truth) < SLOPPY_IOU:
            return cand
    for _ in range(40):
        cand = random_box(size, rng)
        if best_iou(cand, truth) < SLOPPY_IOU:
            return cand
    return random_box(size, rng)


def unboxed(truth: Sequence[Sequence[float]], accepted: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the instances no accepted box finds (IoU >= FOUND_IOU)."""
    return [i for i, t in enumerate(truth) if best_iou(t, accepted) < FOUND_IOU]


def is_tight(box: Sequence[float], truth: Sequence[Sequence[float]]) -> bool:
    return best_iou(box, truth) >= TIGHT_IOU


def is_covered(accepted: Sequence[Sequence[float]], truth: Sequence[Sequence[float]]) -> bool:
    return not unboxed(truth, accepted)


class SimulatedBoxCrowd:
    """The answers of `workers` under `model`, drawn from one random stream."""

    def __init__(self, model: CrowdModel, seed: int = 0) -> None:
        self.model = model
        self.workers = make_crowd(model, seed)
        self.rng = np.random.default_rng([seed, 11])

    def draw(
        self,
        worker: BoxWorker,
        truth: Sequence[Sequence[float]],
        accepted: Sequence[Sequence[float]],
        size: tuple[int, int],
        target: int | None = None,
    ) -> Rect | None:
        """One draw task: a box, or None for "none left". `target` (an instance index) is the one the
        protocol asks for; by default the drawer picks one of the unboxed instances."""
        rng, m = self.rng, self.model
        if worker.kind != "honest":
            return None if rng.random() < 0.5 else random_box(size, rng)
        left = unboxed(truth, accepted)
        if not left:
            return None
        if rng.random() < m.miss:
            boxed = [i for i in range(len(truth)) if i not in left]
            if boxed and rng.random() < 0.5:
                return jittered(truth[int(rng.choice(boxed))], size, m.jitter, rng)
            return None
        pick = target if target is not None and target in left else int(rng.choice(left))
        if rng.random() < m.sloppy:
            return sloppy_box(truth[pick], truth, size, rng)
        return jittered(truth[pick], size, m.jitter, rng)

    def verify(self, worker: BoxWorker, truth: bool) -> bool:
        """One yes/no judgement (a box tight? an image covered?) whose right answer is `truth`."""
        if worker.kind == "always_yes":
            return True
        if worker.kind == "random":
            return bool(self.rng.random() < 0.5)
        return truth if self.rng.random() < worker.accuracy else not truth

    def judge_box(self, worker: BoxWorker, box: Sequence[float], truth: Sequence[Sequence[float]]) -> bool:
        return self.verify(worker, is_tight(box, truth))

    def judge_covered(
        self, worker: BoxWorker, accepted: Sequence[Sequence[float]], truth: Sequence[Sequence[float]]
    ) -> bool:
        return self.verify(worker, is_covered(accepted, truth))


def median_box(boxes: Sequence[Sequence[float]], size: tuple[int, int]) -> Rect:
    """The edge-wise median of several drawings."""
    return _clip(np.median(np.asarray(boxes, dtype=float), axis=0).tolist(), size)
