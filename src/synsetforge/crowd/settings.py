"""Settings of crowd verification: task shape, gold, blocking, consensus, limits.

Why a dataclass read from `[settings]` in `synsetforge.toml` (keys prefixed `crowd_`, e.g.
`crowd_grid_size = 24`): the paper leaves the threshold and the initial subset's size unpublished (SPEC §3),
so every number that shapes cost or quality is a setting with a documented default, and the web app, the
CLI and tests all read the same object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synsetforge.errors import InputError

if TYPE_CHECKING:
    from synsetforge.crowd.aggregation import DynamicConsensus
    from synsetforge.store.project import Project

PREFIX = "crowd_"
METHODS = ("imagenet", "fixed", "worker-aware")
WORKER_GROUPS = ("synset", "all")
POPULATIONS = ("group", "uniform", "gold")
POLICIES = ("exclude", "downweight")
CALIBRATIONS = ("votes", "gold", "initial")


@dataclass(frozen=True)
class CrowdSettings:
    """Everything that shapes tasks and decisions.

    grid_size: images per task, gold included (ImageNetV2 used 48; 24 fits a phone screen).
    gold_per_task: known-answer images mixed into each task (ImageNetV2: 6 of 48); a new worker's first
        task carries up to `block_min_gold` of them (probation, see `crowd.assign.gold_quota`).
    task_minutes: a task expires after this long and its images return to the pool (ImageNetV2: 600 s).
    examples: already-accepted images of the synset shown above the grid.
    method: live decision rule: "imagenet" (dynamic consensus, SPEC §3), "fixed" (`fixed_votes` votes,
        then majority; the baseline) or "worker-aware" (beyond the paper: each vote adds its worker's weight
        of evidence to the image's log-odds; accept at `threshold`, reject at `reject_threshold`, undecided
        at `max_votes`; `crowd.worker_aware`).
    worker_group / worker_prior_good / worker_prior_strength / worker_population / worker_refit_votes:
        worker-aware only. Worker models are kept per synset ("synset") or for the whole project ("all");
        a group's P(good) starts at `worker_prior_good` until its first refit; each worker's sensitivity and
        specificity have a Beta prior of `worker_prior_strength` pseudo-votes centred on the group's
        population rates ("group") or on 0.5 ("uniform": no weight until evidence); a group is refitted
        in the background once `worker_refit_votes` new votes arrived (sooner while it is young).
    worker_min_spread / worker_min_evidence: worker-aware only. After a refit, a worker with at least
        `worker_min_evidence` answers in the group (gold + votes) whose yes and no weights differ by less
        than `worker_min_spread` nats gets no more tasks of the group (0 turns it off; a spammer's spread is
        0, a symmetric worker of accuracy a has 2 log(a / (1 - a)): 1.0 ~ 0.62, 3.5 ~ 0.85). Their votes
        keep their (small) weight. The default only stops spammers; 3.5 (the simulations' setting) halves
        the votes an accuracy-0.8 crowd needs but leaves no tasks for a crowd without better workers.
    worker_qualify: worker-aware only (0: off). A worker answers this many gold images of a synset group,
        in tasks of gold alone (a qualification), before getting any of the group's candidates; the spread
        cut and the blocking rule then judge them on those answers before they cast a paid vote. Gold
        answers do not count as votes on candidates, and a group with fewer unanswered gold images
        qualifies the worker once they are used up.
    threshold / reject_threshold / initial_votes / initial_fraction / initial_min / max_votes / min_votes /
        prior_strength: dynamic consensus (passed to the aggregation helper's `DynamicConsensus`). Accept
        at confidence >= `threshold`, reject at <= `reject_threshold` (unset: the mirror `1 - threshold`,
        SPEC §3). A smaller accept than reject risk, e.g. 0.997 / 0.01, buys precision for few votes: most
        candidates are bad, rejecting them at 0.003 would cost ~1.5 more votes each, and a wrong rejection
        only costs recall. The initial subset of a synset is every image whose id hashes below
        `initial_fraction`, topped up to `initial_min` images (all of them in a small synset), and grown
        by `initial_min` at a time while fewer than `initial_each` of its images have a yes-majority (or
        a no-majority), up to `initial_max` images (`crowd.consensus.choose_initial`).
    calibration: how a synset's table gets its worker model (P(good), P(yes | good), P(no | bad)), towards
        which its cells are smoothed. "votes" (default): EM over every counted vote on the synset's images
        with its gold images pinned to their answers (`crowd.consensus.votes_calibrated`); "gold": the two
        accuracies from gold answers alone (each worker's probation answers left out), once good and bad
        gold images each have `calibration_min_gold` answers (`gold_calibrated`); "initial": the paper's
        table, fitted by EM on the initial subset alone. The tallies always come from the initial subset.
    block_threshold / block_min_gold: a worker is blocked once they answered at least `block_min_gold`
        gold images and got fewer than `block_threshold` of them right.
    blocked_policy: "exclude" (a blocked worker's votes get weight 0) or "downweight" (weight
        `blocked_weight`); affected images are re-evaluated and go back to the pool when undecided.
    max_body_bytes: requests with larger bodies are refused with 413 before anything is parsed.
    """

    grid_size: int = 24
    gold_per_task: int = 3
    task_minutes: float = 10.0
    examples: int = 3
    method: str = "imagenet"
    fixed_votes: int = 5
    threshold: float = 0.99
    reject_threshold: float | None = None
    initial_votes: int = 10
    initial_fraction: float = 0.05
    initial_min: int = 20
    initial_each: int = 3
    initial_max: int = 100
    max_votes: int = 20
    min_votes: int = 1
    prior_strength: float = 100.0
    calibration: str = "votes"
    calibration_min_gold: int = 30
    block_threshold: float = 0.6
    block_min_gold: int = 10
    blocked_policy: str = "exclude"
    blocked_weight: float = 0.5
    max_body_bytes: int = 64 * 1024
    worker_group: str = "synset"
    worker_prior_good: float = 0.5
    worker_prior_strength: float = 4.0
    worker_population: str = "group"
    worker_refit_votes: int = 200
    worker_min_spread: float = 1.0
    worker_min_evidence: int = 20
    worker_qualify: int = 0

    def __post_init__(self) -> None:
        checks = [
            (2 <= self.grid_size <= 200, "grid_size must be between 2 and 200"),
            (0 <= self.gold_per_task < self.grid_size, "gold_per_task must be >= 0 and below grid_size"),
            (self.task_minutes > 0, "task_minutes must be > 0"),
            (0 <= self.examples <= 12, "examples must be between 0 and 12"),
            (self.method in METHODS, f"method must be one of {list(METHODS)}"),
            (self.fixed_votes >= 1, "fixed_votes must be >= 1"),
            (0.5 < self.threshold < 1.0, "threshold must be in (0.5, 1)"),
            (
                self.reject_threshold is None or 0.0 < self.reject_threshold < 0.5,
                "reject_threshold must be in (0, 0.5)",
            ),
            (self.initial_votes >= 1, "initial_votes must be >= 1"),
            (0.0 <= self.initial_fraction <= 1.0, "initial_fraction must be in [0, 1]"),
            (self.initial_min >= 1, "initial_min must be >= 1"),
            (self.initial_each >= 0, "initial_each must be >= 0"),
            (self.initial_max >= 1, "initial_max must be >= 1"),
            (self.max_votes >= 1, "max_votes must be >= 1"),
            (0 <= self.min_votes <= self.max_votes, "min_votes must be in [0, max_votes]"),
            (self.prior_strength >= 0, "prior_strength must be >= 0"),
            (self.calibration in CALIBRATIONS, f"calibration must be one of {list(CALIBRATIONS)}"),
            (self.calibration_min_gold >= 1, "calibration_min_gold must be >= 1"),
            (0.0 <= self.block_threshold <= 1.0, "block_threshold must be in [0, 1]"),
            (self.block_min_gold >= 1, "block_min_gold must be >= 1"),
            (self.blocked_policy in POLICIES, f"blocked_policy must be one of {list(POLICIES)}"),
            (0.0 < self.blocked_weight < 1.0, "blocked_weight must be in (0, 1)"),
            (1024 <= self.max_body_bytes <= 64 * 1024 * 1024, "max_body_bytes must be 1 KiB..64 MiB"),
            (self.worker_group in WORKER_GROUPS, f"worker_group must be one of {list(WORKER_GROUPS)}"),
            (0.0 < self.worker_prior_good < 1.0, "worker_prior_good must be in (0, 1)"),
            (self.worker_prior_strength > 0, "worker_prior_strength must be > 0"),
            (self.worker_population in POPULATIONS, f"worker_population must be one of {list(POPULATIONS)}"),
            (self.worker_refit_votes >= 1, "worker_refit_votes must be >= 1"),
            (self.worker_min_spread >= 0, "worker_min_spread must be >= 0"),
            (self.worker_min_evidence >= 0, "worker_min_evidence must be >= 0"),
            (0 <= self.worker_qualify <= 1000, "worker_qualify must be between 0 and 1000"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"crowd setting: {message}")

    @property
    def blocked_vote_weight(self) -> float:
        """The weight a blocked worker's votes get under the policy."""
        return 0.0 if self.blocked_policy == "exclude" else self.blocked_weight

    def with_(self, **changes: Any) -> CrowdSettings:
        """A copy with some settings changed (validated)."""
        return dataclasses.replace(self, **changes)

    def consensus(self) -> DynamicConsensus:
        """The aggregation helper's estimator configured like the live loop."""
        from synsetforge.crowd.aggregation import DynamicConsensus

        return DynamicConsensus(
            self.threshold,
            reject_threshold=self.reject_threshold,
            initial_votes=self.initial_votes,
            max_votes=self.max_votes,
            min_votes=self.min_votes,
            prior_strength=self.prior_strength,
        )

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> CrowdSettings:
        """From `{"crowd_grid_size": 24, ...}`; other keys are ignored, unknown `crowd_` keys refused."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX) :]
            if name not in fields:
                raise InputError(
                    f"unknown crowd setting {key!r}; known: {sorted(PREFIX + f for f in fields)}"
                )
            default = getattr(cls, name)
            kind = float if default is None else type(default)  # the only optional setting is a float
            try:
                kwargs[name] = kind(value) if not isinstance(default, str) else str(value)
            except (TypeError, ValueError):
                raise InputError(
                    f"crowd setting {key!r}: {value!r} is not a {type(default).__name__}"
                ) from None
        return cls(**kwargs)

    @classmethod
    def from_project(cls, project: Project) -> CrowdSettings:
        return cls.from_mapping(dict(project.config.settings))
