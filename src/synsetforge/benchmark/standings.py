"""The leaderboard of a challenge and what each team may see of its own submissions.

* One entry per team: the submission with the best public score on the ranking metric (with the Ladder:
  the last one the Ladder released). The private board ranks the same submissions by their private score,
  so a team cannot pick its entry by looking at hidden labels. It is shown only after the end date.
* Every score carries its 95% bootstrap interval; each entry is compared with the next one down by a
  paired test on the same images (exact McNemar for 0/1 losses, a paired bootstrap for hierarchical cost).
* Teams that declared outside data are ranked apart (ILSVRC's two tracks).
* Ladder (Blum & Hardt 2015): per team, a public score is released only when it beats the team's last
  released score by the margin (fixed step, or the parameter-free paired-test margin). Only the ranking
  metric is shown, rounded to the step; a submission that does not improve shows no score.

No function here returns per-image values; pages and the API build on these views only.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import select

from synsetforge.benchmark.challenge import (
    BINARY_METRICS,
    METRIC_LABELS,
    ChallengeInfo,
    get_challenge,
    now_utc,
    utc,
)
from synsetforge.benchmark.leaderboard import Ladder, LadderStep, paired_test
from synsetforge.benchmark.scoring import load_context, unpack_losses
from synsetforge.errors import InputError
from synsetforge.store import schema
from synsetforge.store.project import Project

Split = Literal["public", "private"]
TRACKS = ("provided data", "outside data")
SIGNIFICANCE = 0.05


class NotRevealed(InputError):
    """The private leaderboard of a running challenge (HTTP 403)."""


@dataclass(frozen=True)
class Score:
    value: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Comparison:
    """This entry against the next one down: is the gap more than chance on these images?"""

    method: str
    p_value: float
    difference: float  # next entry's mean loss minus this one's

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE


@dataclass(frozen=True)
class Entry:
    rank: int
    team: str
    track: str
    submission_id: int
    submitted_at: datetime
    n_submissions: int
    scores: dict[str, Score]
    vs_next: Comparison | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "team": self.team,
            "track": self.track,
            "submission": self.submission_id,
            "submitted_at": self.submitted_at.isoformat(),
            "submissions_scored": self.n_submissions,
            "scores": {k: v.to_json() for k, v in self.scores.items()},
            "vs_next": None
            if self.vs_next is None
            else {
                "method": self.vs_next.method,
                "p_value": self.vs_next.p_value,
                "significant": self.vs_next.significant,
            },
        }


@dataclass(frozen=True)
class Board:
    challenge: ChallengeInfo
    split: Split
    rank_by: str
    metrics: list[str]
    ladder: bool
    tracks: dict[str, list[Entry]] = field(default_factory=dict)

    @property
    def entries(self) -> list[Entry]:
        return [e for track in TRACKS for e in self.tracks.get(track, [])]

    def to_json(self) -> dict[str, Any]:
        return {
            "challenge": self.challenge.name,
            "split": self.split,
            "rank_by": self.rank_by,
            "metrics": self.metrics,
            "ladder": self.ladder,
            "tracks": {t: [e.to_json() for e in es] for t, es in self.tracks.items()},
        }


@dataclass(frozen=True)
class _Scored:
    id: int
    team_id: int
    team: str
    outside: bool
    created_at: datetime
    public: dict[str, Any]
    private: dict[str, Any]


def _scores(block: dict[str, Any], metrics: list[str]) -> dict[str, Score]:
    got = block.get("metrics", {})
    return {
        m: Score(float(got[m]["value"]), float(got[m]["low"]), float(got[m]["high"]))
        for m in metrics
        if m in got
    }


def _scored_rows(project: Project, info: ChallengeInfo) -> list[_Scored]:
    sub, team = schema.Submission, schema.Team
    with project.session() as s:
        rows = s.execute(
            select(sub, team.name, team.outside_data)
            .join(team, team.id == sub.team_id)
            .where(sub.challenge_id == info.id, sub.status == "scored")
            .order_by(sub.created_at, sub.id)
        ).all()
        return [
            _Scored(
                r.id,
                r.team_id,
                name,
                bool(od),
                utc(r.created_at) or now_utc(),
                dict(r.public_scores or {}),
                dict(r.private_scores or {}),
            )
            for r, name, od in rows
        ]


class _Losses:
    """Per-image losses of stored submissions, read on demand (never leave this module)."""

    def __init__(self, project: Project, info: ChallengeInfo) -> None:
        self.project = project
        self.info = info
        self._cache: dict[int, dict[str, np.ndarray]] = {}
        self._public: np.ndarray | None = None

    @property
    def public(self) -> np.ndarray:
        if self._public is None:
            self._public = load_context(self.project, self.info.id).public
        return self._public

    def get(self, row: _Scored, metric: str, split: Split) -> np.ndarray:
        if row.id not in self._cache:
            self._cache[row.id] = unpack_losses(self.project.blobs.get(row.private["losses"]))
        v = self._cache[row.id][metric]
        return v[self.public] if split == "public" else v[~self.public]


def _ladder_steps(rows: list[_Scored], info: ChallengeInfo, losses: _Losses) -> dict[int, LadderStep]:
    """The Ladder run over each team's scored submissions in submission order."""
    metric = info.settings.rank_by
    ladders: dict[int, Ladder] = defaultdict(lambda: Ladder(info.settings.ladder_margin))
    out: dict[int, LadderStep] = {}
    for row in rows:
        if metric not in row.public.get("metrics", {}):
            continue
        ladder = ladders[row.team_id]
        if ladder.step is None:
            out[row.id] = ladder.submit(losses.get(row, metric, "public"))
        else:
            value = float(row.public["metrics"][metric]["value"])
            out[row.id] = ladder.submit(np.asarray([value]))
    return out


def _selected(
    rows: list[_Scored], info: ChallengeInfo, steps: dict[int, LadderStep] | None
) -> dict[int, tuple[_Scored, float | None]]:
    """team id -> (its entry, Ladder-released value or None)."""
    metric = info.settings.rank_by
    best: dict[int, tuple[_Scored, float | None]] = {}
    for row in rows:
        if metric not in row.public.get("metrics", {}):
            continue
        if steps is not None:
            step = steps[row.id]
            if step.improved:
                best[row.team_id] = (row, step.released)
            continue
        value = float(row.public["metrics"][metric]["value"])
        held = best.get(row.team_id)
        if held is None or value < float(held[0].public["metrics"][metric]["value"]):
            best[row.team_id] = (row, None)
    return best


def _compare(a: np.ndarray, b: np.ndarray, metric: str, n_resamples: int) -> Comparison:
    method: Literal["mcnemar", "bootstrap"] = "mcnemar" if metric in BINARY_METRICS else "bootstrap"
    result = paired_test(a, b, method=method, n_resamples=n_resamples, seed=0)
    return Comparison(method, float(result.p_value), -float(result.difference))


def leaderboard(
    project: Project,
    challenge: str | int,
    *,
    split: Split = "public",
    organiser: bool = False,
    now: datetime | None = None,
) -> Board:
    """The ranked entries; the private board only once the challenge ended (or for the organiser)."""
    info = get_challenge(project, challenge)
    if split not in ("public", "private"):
        raise InputError(f"unknown leaderboard {split!r}; use public or private")
    if split == "private" and not organiser and not info.revealed(now):
        raise NotRevealed(
            f"the private leaderboard of {info.name!r} is revealed when the challenge ends"
            + (f" ({info.ends_at:%Y-%m-%d %H:%M} UTC)" if info.ends_at else " (it has no end date yet)")
        )
    settings = info.settings
    metric = settings.rank_by
    rows = _scored_rows(project, info)
    losses = _Losses(project, info)
    steps = _ladder_steps(rows, info, losses) if settings.ladder else None
    chosen = _selected(rows, info, steps)
    n_scored: dict[int, int] = defaultdict(int)
    for row in rows:
        n_scored[row.team_id] += 1
    ladder_view = settings.ladder and split == "public"
    shown = [metric] if ladder_view else list(settings.metrics)
    by_track: dict[str, list[tuple[float, datetime, int, _Scored, dict[str, Score]]]] = defaultdict(list)
    for row, released in chosen.values():
        block = row.public if split == "public" else row.private
        scores = _scores(block, shown)
        if metric not in scores:
            continue
        if ladder_view and released is not None:
            own = scores[metric]
            scores[metric] = Score(released, own.low, own.high)
        track = TRACKS[1] if row.outside else TRACKS[0]
        by_track[track].append((scores[metric].value, row.created_at, row.id, row, scores))
    tracks: dict[str, list[Entry]] = {}
    for track in TRACKS:
        items = sorted(by_track.get(track, []), key=lambda t: (t[0], t[1], t[2]))
        entries: list[Entry] = []
        rank = 0
        for k, (value, created, sid, row, scores) in enumerate(items):
            if k == 0 or value != items[k - 1][0]:
                rank = k + 1
            vs_next = None
            if k + 1 < len(items):
                nxt = items[k + 1][3]
                vs_next = _compare(
                    losses.get(row, metric, split),
                    losses.get(nxt, metric, split),
                    metric,
                    settings.n_resamples,
                )
            entries.append(Entry(rank, row.team, track, sid, created, n_scored[row.team_id], scores, vs_next))
        if entries:
            tracks[track] = entries
    return Board(info, split, metric, shown, settings.ladder, tracks)


# -- a team's own submissions ---------------------------------------------------------------------


@dataclass(frozen=True)
class SubmissionView:
    """One submission as its own team sees it: aggregates only, private ones after the end."""

    id: int
    challenge: str
    status: str
    format: str
    account: str
    created_at: datetime
    scored_at: datetime | None
    error: str | None
    counts_against_limit: bool
    public: dict[str, Score] | None
    ladder_improved: bool | None
    private: dict[str, Score] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "challenge": self.challenge,
            "status": self.status,
            "format": self.format,
            "account": self.account,
            "created_at": self.created_at.isoformat(),
            "scored_at": self.scored_at.isoformat() if self.scored_at else None,
            "error": self.error,
            "counts_against_limit": self.counts_against_limit,
            "public": None if self.public is None else {k: v.to_json() for k, v in self.public.items()},
            "ladder_improved": self.ladder_improved,
            "private": None if self.private is None else {k: v.to_json() for k, v in self.private.items()},
        }


def team_submissions(
    project: Project,
    challenge: str | int,
    team_id: int,
    *,
    submission_id: int | None = None,
    now: datetime | None = None,
) -> list[SubmissionView]:
    """The team's submissions, newest first (or just `submission_id`, if it is the team's)."""
    info = get_challenge(project, challenge)
    settings = info.settings
    revealed = info.revealed(now)
    sub, part = schema.Submission, schema.Participant
    with project.session() as s:
        query = (
            select(sub, part.name)
            .join(part, part.id == sub.participant_id)
            .where(sub.challenge_id == info.id, sub.team_id == team_id)
            .order_by(sub.created_at.desc(), sub.id.desc())
        )
        if submission_id is not None:
            query = query.where(sub.id == submission_id)
        rows = s.execute(query).all()
        for r, _ in rows:
            s.expunge(r)
    steps: dict[int, LadderStep] = {}
    if settings.ladder:
        scored = [r for r in _scored_rows(project, info) if r.team_id == team_id]
        steps = _ladder_steps(scored, info, _Losses(project, info))
    out: list[SubmissionView] = []
    for r, account_name in rows:
        public = private = None
        improved = None
        if r.status == "scored":
            if settings.ladder:
                step = steps.get(r.id)
                improved = bool(step and step.improved)
                if step and step.improved:
                    own = _scores(r.public_scores or {}, [settings.rank_by])
                    if settings.rank_by in own:
                        o = own[settings.rank_by]
                        public = {settings.rank_by: Score(step.released, o.low, o.high)}
            else:
                public = _scores(r.public_scores or {}, settings.metrics)
            if revealed:
                private = _scores(r.private_scores or {}, settings.metrics)
        out.append(
            SubmissionView(
                r.id,
                info.name,
                r.status,
                r.format,
                account_name,
                utc(r.created_at) or now_utc(),
                utc(r.scored_at),
                r.error,
                bool(r.counts_against_limit),
                public,
                improved,
                private,
            )
        )
    return out


# -- CSV ------------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a leading '."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def board_csv(board: Board) -> str:
    """The leaderboard as CSV (every cell passed through `csv_safe`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    header = ["track", "rank", "team", "submission", "submitted_at"]
    for m in board.metrics:
        header += [m, f"{m}_low95", f"{m}_high95"]
    header += ["p_value_vs_next", "test"]
    writer.writerow([csv_safe(h) for h in header])
    for e in board.entries:
        row: list[object] = [e.track, e.rank, e.team, e.submission_id, e.submitted_at.isoformat()]
        for m in board.metrics:
            sc = e.scores.get(m)
            row += [f"{sc.value:.6f}", f"{sc.low:.6f}", f"{sc.high:.6f}"] if sc else ["", "", ""]
        row += [f"{e.vs_next.p_value:.4g}", e.vs_next.method] if e.vs_next else ["", ""]
        writer.writerow([csv_safe(c) for c in row])
    return buf.getvalue()


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)
