"""Box decisions: the sequential posterior of quality and coverage votes, with verifiers' gold accuracy.

Why a per-vote posterior rather than the yes/no engine's confidence table: a table per synset needs an
initial subset with ~10 votes per item, which boxes (a few per image, each drawn once) never accumulate;
the two-coin model underneath the table (`crowd.aggregation.dynamic_consensus`) is what carries over.
Each vote moves the log-odds by +-w log(a / (1 - a)), a the worker's accuracy smoothed from their gold
record (a worker at chance adds nothing; nobody is trusted beyond `accuracy_cap`), w the vote's weight
(0 for a blocked worker under the exclude policy). Decided when the posterior passes the accept or reject
level after `min_votes`; at `max_votes` without either, the answer is no (the box is rejected; the image
goes back to drawing and its coverage evidence starts afresh, `progress.settle`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from synsetforge.boxes.settings import BoxSettings
from synsetforge.store import schema


def accuracy(correct: int, total: int, settings: BoxSettings) -> float:
    """A worker's accuracy from gold, smoothed towards `verifier_accuracy`, kept in [0.5, accuracy_cap]."""
    k = settings.accuracy_strength
    raw = (correct + k * settings.verifier_accuracy) / (total + k) if total + k > 0 else 0.5
    return min(max(raw, 0.5), settings.accuracy_cap)


def posterior(prior: float, votes: Iterable[tuple[bool, float, float]]) -> float:
    """P(yes is true | votes) for votes (label, accuracy, weight) given the prior P(yes)."""
    logit = math.log(prior) - math.log1p(-prior)
    for label, acc, weight in votes:
        step = weight * (math.log(acc) - math.log1p(-acc))
        logit += step if label else -step
    return 1.0 / (1.0 + math.exp(-logit))


@dataclass(frozen=True)
class Verdict:
    """Where an item stands: `decided` None while more votes are wanted, else True (good / covered) or
    False; `p` = P(good / covered); `votes` = counted votes (weight > 0); `capped`: decided False only
    because `max_votes` was reached without enough confidence either way."""

    decided: bool | None
    p: float
    votes: int
    capped: bool = False

    @property
    def confidence(self) -> float:
        """The posterior of the decision taken (or of the likelier side while undecided)."""
        return self.p if (self.decided if self.decided is not None else self.p >= 0.5) else 1.0 - self.p


def _weighted(
    s: Session, rows: list[tuple[bool, float, int]], settings: BoxSettings, blocked_weight: float
) -> list[tuple[bool, float, float]]:
    workers = {wid for _, _, wid in rows}
    w = schema.Worker
    info = {
        wid: (status, correct, total)
        for wid, status, correct, total in s.execute(
            select(w.id, w.status, w.gold_correct, w.gold_total).where(w.id.in_(workers))
        )
    }
    out = []
    for label, weight, wid in rows:
        status, correct, total = info[wid]
        if status != "active":
            weight = min(weight, blocked_weight)
        out.append((bool(label), accuracy(correct, total, settings), float(weight)))
    return out


def _verdict(
    votes: list[tuple[bool, float, float]],
    prior: float,
    accept: float,
    reject: float,
    min_votes: int,
    max_votes: int,
) -> Verdict:
    p = posterior(prior, votes)
    n = sum(1 for _, _, weight in votes if weight > 0)
    if n >= min_votes and p >= accept:
        return Verdict(True, p, n)
    if n >= min_votes and p <= reject:
        return Verdict(False, p, n)
    if n >= max_votes:  # conflicting votes: not good / not covered (a box is redrawn, an image re-checked)
        return Verdict(False, p, n, capped=True)
    return Verdict(None, p, n)


def box_verdict(s: Session, box_id: int, settings: BoxSettings, blocked_weight: float) -> Verdict:
    """The quality verdict on one box from its non-gold quality votes (at the cap: rejected)."""
    v = schema.BoxVote
    rows = [
        (bool(label), float(weight), int(wid))
        for label, weight, wid in s.execute(
            select(v.label, v.weight, v.worker_id).where(v.box_id == box_id, v.kind == "quality")
        )
    ]
    votes = _weighted(s, rows, settings, blocked_weight)
    return _verdict(
        votes,
        settings.quality_prior,
        settings.quality_accept,
        settings.quality_reject,
        settings.quality_min_votes,
        settings.quality_max_votes,
    )


def coverage_verdict(
    s: Session, candidate_id: int, round_: int, settings: BoxSettings, blocked_weight: float
) -> Verdict:
    """The coverage verdict on one image from its round's coverage votes ("none left" answers included)."""
    v = schema.BoxVote
    rows = [
        (bool(label), float(weight), int(wid))
        for label, weight, wid in s.execute(
            select(v.label, v.weight, v.worker_id).where(
                v.candidate_id == candidate_id,
                v.kind == "coverage",
                v.round == round_,
                v.is_gold.is_(False),
            )
        )
    ]
    votes = _weighted(s, rows, settings, blocked_weight)
    return _verdict(
        votes,
        settings.coverage_prior,
        settings.coverage_accept,
        settings.coverage_reject,
        settings.coverage_min_votes,
        settings.coverage_max_votes,
    )
