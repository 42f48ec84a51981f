"""Settings of the crowd box engine: task shapes, gold, and the confidence each decision needs.

Read from `[settings]` in `synsetforge.toml` with keys prefixed `boxes_` (e.g. `boxes_quality_accept =
0.995`). Blocking, expiry and the body-size cap are the yes/no crowd's (`crowd_*` settings): one worker,
one gold record, one blocking rule across every task kind.

Why these defaults (SPEC §4: 99.2% of accepted boxes accurate, 97.9% of images covered; a crowd of
verifiers with accuracy ~0.85 and 10% spammers): a box is accepted once the posterior P(good) of its
quality votes reaches `quality_accept` = 0.995 (each vote weighs log(a / (1 - a)) with the verifier's
accuracy a estimated from gold, so three agreeing average verifiers after a prior of 0.7 are enough, and
a spammer at a ~ 0.5 weighs almost nothing); rejected at `quality_reject` = 0.02 (a wrong rejection only
costs one more drawing). An image is covered at P(covered) >= `coverage_accept` = 0.995 and goes back to
drawing at <= `coverage_reject` = 0.05 (in-process simulations of that crowd on 80-image projects, 1-3
instances each: 97.5-100% of images covered, 99.3-100% of accepted boxes at IoU >= 0.7).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synsetforge.errors import InputError

if TYPE_CHECKING:
    from synsetforge.store.project import Project

PREFIX = "boxes_"


@dataclass(frozen=True)
class BoxSettings:
    """Everything that shapes box tasks and box decisions.

    quality_grid / coverage_grid: items per verification task, gold included. quality_gold /
        coverage_gold: gold items per task; a worker with fewer than `crowd_block_min_gold` gold answers
        gets up to half the grid as gold (probation, like the yes/no tasks).
    draw_gold_rate / draw_probation_gold: chance that a draw task is a gold image (known boxes), for a
        worker past / on probation.
    gold_iou: a drawing on a gold image is right when its IoU with a hidden true box reaches this.
    quality_prior / coverage_prior: P(a drawn box is good) / P(an image with its accepted boxes is
        covered) before any vote.
    verifier_accuracy / accuracy_strength / accuracy_cap: a worker's accuracy is their gold record smoothed
        towards `verifier_accuracy` with `accuracy_strength` pseudo-answers, kept in [0.5, accuracy_cap].
    quality_accept / quality_reject / quality_min_votes / quality_max_votes: decide a box when P(good) >=
        accept or <= reject after at least min votes; at max votes without either, the box is rejected.
    coverage_accept / coverage_reject / coverage_min_votes / coverage_max_votes: the same for coverage
        (a "none left" answer of a draw task counts as a "covered" vote); at max, not covered: back to
        drawing with a fresh coverage round.
    max_draws: draw tasks an image gets before it is given up.
    min_box_px: the smallest width and height of a drawn box, in pixels of the image as served.
    max_items: most ids or boxes one submission may name.
    enroll_every_s: how often assignment looks for newly accepted images to enter drawing.
    """

    quality_grid: int = 12
    quality_gold: int = 2
    coverage_grid: int = 12
    coverage_gold: int = 2
    draw_gold_rate: float = 0.1
    draw_probation_gold: float = 0.5
    gold_iou: float = 0.7
    quality_prior: float = 0.7
    coverage_prior: float = 0.6
    verifier_accuracy: float = 0.8
    accuracy_strength: float = 10.0
    accuracy_cap: float = 0.95
    quality_accept: float = 0.995
    quality_reject: float = 0.02
    quality_min_votes: int = 2
    quality_max_votes: int = 9
    coverage_accept: float = 0.995
    coverage_reject: float = 0.05
    coverage_min_votes: int = 2
    coverage_max_votes: int = 9
    max_draws: int = 8
    min_box_px: float = 2.0
    max_items: int = 200
    enroll_every_s: float = 15.0

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.quality_grid <= 100, "quality_grid must be between 1 and 100"),
            (0 <= self.quality_gold < self.quality_grid, "quality_gold must be >= 0 and below quality_grid"),
            (1 <= self.coverage_grid <= 100, "coverage_grid must be between 1 and 100"),
            (
                0 <= self.coverage_gold < self.coverage_grid,
                "coverage_gold must be >= 0 and below coverage_grid",
            ),
            (0.0 <= self.draw_gold_rate <= 1.0, "draw_gold_rate must be in [0, 1]"),
            (0.0 <= self.draw_probation_gold <= 1.0, "draw_probation_gold must be in [0, 1]"),
            (0.0 < self.gold_iou < 1.0, "gold_iou must be in (0, 1)"),
            (0.0 < self.quality_prior < 1.0, "quality_prior must be in (0, 1)"),
            (0.0 < self.coverage_prior < 1.0, "coverage_prior must be in (0, 1)"),
            (0.5 < self.verifier_accuracy < 1.0, "verifier_accuracy must be in (0.5, 1)"),
            (self.accuracy_strength >= 0, "accuracy_strength must be >= 0"),
            (0.5 < self.accuracy_cap < 1.0, "accuracy_cap must be in (0.5, 1)"),
            (0.5 < self.quality_accept < 1.0, "quality_accept must be in (0.5, 1)"),
            (0.0 < self.quality_reject < 0.5, "quality_reject must be in (0, 0.5)"),
            (1 <= self.quality_min_votes <= self.quality_max_votes, "quality_min_votes must be in [1, max]"),
            (0.5 < self.coverage_accept < 1.0, "coverage_accept must be in (0.5, 1)"),
            (0.0 < self.coverage_reject < 0.5, "coverage_reject must be in (0, 0.5)"),
            (
                1 <= self.coverage_min_votes <= self.coverage_max_votes,
                "coverage_min_votes must be in [1, max]",
            ),
            (self.max_draws >= 1, "max_draws must be >= 1"),
            (self.min_box_px >= 1.0, "min_box_px must be >= 1"),
            (1 <= self.max_items <= 10_000, "max_items must be between 1 and 10000"),
            (self.enroll_every_s >= 0, "enroll_every_s must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"boxes setting: {message}")

    def with_(self, **changes: Any) -> BoxSettings:
        """A copy with some settings changed (validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> BoxSettings:
        """From `{"boxes_quality_grid": 12, ...}`; other keys are ignored, unknown `boxes_` keys refused."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX) :]
            if name not in fields:
                raise InputError(
                    f"unknown boxes setting {key!r}; known: {sorted(PREFIX + f for f in fields)}"
                )
            kind = type(getattr(cls, name))
            try:
                kwargs[name] = kind(value)
            except (TypeError, ValueError):
                raise InputError(f"boxes setting {key!r}: {value!r} is not a {kind.__name__}") from None
        return cls(**kwargs)

    @classmethod
    def from_project(cls, project: Project) -> BoxSettings:
        return cls.from_mapping(dict(project.config.settings))
