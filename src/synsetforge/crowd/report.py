"""How right the crowd's decisions are, measured against ground truth, and what they cost in votes.

Ground truth comes from the `ground_truth` table (the synthetic source records it; an expert audit can too).
Costs count every vote cast on candidate images, including votes later excluded because their worker was
blocked (they were paid for); gold votes are reported separately.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from synsetforge.crowd.consensus import playable
from synsetforge.crowd.simulate import DecisionRates, shown
from synsetforge.store import schema


@dataclass(frozen=True)
class TruthReport(DecisionRates):
    images: int
    accepted: int
    rejected: int
    undecided: int
    open: int
    true_accepted: int
    true_rejected: int
    positives: int
    votes: int  # on candidate images, excluded ones included
    votes_excluded: int
    gold_votes: int
    with_truth: int

    @property
    def votes_per_decided(self) -> float:
        return self.votes / self.decided if self.decided else float("nan")

    def summary(self) -> str:
        return (
            f"precision {shown(self.precision, '.2%')} on {self.accepted} accepted "
            f"({self.true_accepted} truly good), "
            f"recall {shown(self.recall, '.2%')}; {self.rejected} rejected, {self.undecided} undecided, {self.open} open "
            f"of {self.images}; {self.votes} votes ({self.votes_excluded} excluded) = "
            f"{shown(self.votes_per_decided, '.2f')} per decided image; {self.gold_votes} gold votes"
        )


def truth_report(session: Session) -> TruthReport:
    """Decisions of playable candidates that have ground truth, against it (votes on those same images)."""
    c, gt, v = schema.Candidate, schema.GroundTruth, schema.Vote
    tallies: dict[str | None, tuple[int, int]] = {}
    for decision, n, good in session.execute(
        select(c.decision, func.count(), func.sum(case((gt.positive.is_(True), 1), else_=0)))
        .join(gt, gt.candidate_id == c.id)
        .where(playable())
        .group_by(c.decision)
    ):
        tallies[decision] = (int(n), int(good or 0))
    total = sum(n for n, _ in tallies.values())
    positives = sum(g for _, g in tallies.values())
    acc_n, acc_good = tallies.get("accepted", (0, 0))
    rej_n, rej_good = tallies.get("rejected", (0, 0))
    votes, excluded = session.execute(
        select(func.count(), func.sum(case((v.weight > 0, 0), else_=1)))
        .join(c, c.id == v.candidate_id)
        .join(gt, gt.candidate_id == c.id)
        .where(v.is_gold.is_(False), playable())
    ).one()
    gold_votes = session.scalar(select(func.count()).select_from(v).where(v.is_gold.is_(True)))
    return TruthReport(
        images=total,
        accepted=acc_n,
        rejected=rej_n,
        undecided=tallies.get("undecided", (0, 0))[0],
        open=tallies.get(None, (0, 0))[0],
        true_accepted=acc_good,
        true_rejected=rej_n - rej_good,
        positives=positives,
        votes=int(votes or 0),
        votes_excluded=int(excluded or 0),
        gold_votes=int(gold_votes or 0),
        with_truth=total,
    )
