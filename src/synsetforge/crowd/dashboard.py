"""Read-only figures for admins: per-synset progress, votes per image, the worker table.

Estimated precision of a synset = the mean confidence P(good) of its accepted images: the expected share of
accepted images that are right, as the consensus itself believes. Where the project has ground truth
(synthetic candidates, expert answers) the measured precision is shown next to it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from synsetforge.crowd.consensus import TableCache, choose_initial, load_stats, playable
from synsetforge.crowd.record import BY_LIVE, DecisionRecord, method_settings, read_record
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.errors import NotFoundError
from synsetforge.store import schema


@dataclass(frozen=True)
class SynsetProgress:
    synset_id: str
    name: str
    status: str
    candidates: int
    gold: int
    accepted: int
    rejected: int
    undecided: int
    open: int
    votes: int  # votes that count (weight > 0), gold excluded
    votes_excluded: int  # weight-0 votes of blocked workers (still paid for)
    est_precision: float | None
    true_precision: float | None
    expected_votes: float | None  # the synset's hardness, from its confidence table
    refreshing: bool = False  # a background job is re-deciding the synset with a new table

    @property
    def decided(self) -> int:
        return self.accepted + self.rejected

    @property
    def votes_per_decided(self) -> float | None:
        return (self.votes + self.votes_excluded) / self.decided if self.decided else None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["decided"] = self.decided
        out["votes_per_decided"] = self.votes_per_decided
        return out


@dataclass(frozen=True)
class ImageRow:
    candidate_id: int
    decision: str | None
    confidence: float | None
    yes: float
    no: float
    votes: int
    excluded: int
    initial: bool
    gold: bool | None  # the gold answer, None if not gold
    truth: bool | None  # ground truth, None if unknown


@dataclass(frozen=True)
class WorkerRow:
    worker_id: int
    kind: str
    name: str | None
    external_id: str | None
    status: str
    blocked_reason: str | None
    tasks: int
    votes: int
    gold_correct: int
    gold_total: int
    est_accuracy: float | None

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_total if self.gold_total else None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["gold_accuracy"] = self.gold_accuracy
        return out


@dataclass(frozen=True)
class DecisionStatus:
    """The project's decision counts, the recorded method behind them, and the rule live serving uses."""

    images: int
    counts: dict[str, int]  # accepted, rejected, undecided, open
    record: DecisionRecord | None
    live_rule: str

    def describe(self) -> str:
        if self.record is not None:
            return self.record.describe()
        if self.images and self.counts["open"] < self.images:
            return "not recorded (decisions written before methods were recorded, or by hand)"
        return "none yet"

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "counts": dict(self.counts),
            "record": self.record.as_dict() if self.record is not None else None,
            "description": self.describe(),
            "live_rule": self.live_rule,
        }


def decision_status(session: Session, settings: CrowdSettings) -> DecisionStatus:
    """Counts of playable images per decision and the recorded method (`crowd.record`)."""
    c = schema.Candidate
    counts = dict.fromkeys(("accepted", "rejected", "undecided", "open"), 0)
    for decision, n in session.execute(
        select(c.decision, func.count()).where(playable()).group_by(c.decision)
    ):
        counts[decision if decision in counts else "open"] += int(n)
    live = DecisionRecord(settings.method, method_settings(settings.method, settings), BY_LIVE, "")
    return DecisionStatus(sum(counts.values()), counts, read_record(session), live.rule())


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _name(lemmas: list[str], sid: str) -> str:
    return str(lemmas[0]).replace("_", " ") if lemmas else sid


def progress(session: Session, cache: TableCache | None = None) -> list[SynsetProgress]:
    """One row per synset that has candidates. `refreshing`: its decisions are being refreshed by a
    background job (a new table, re-deciding every image), so some may still follow the previous table."""
    c, v, g, gt, s = schema.Candidate, schema.Vote, schema.Gold, schema.GroundTruth, schema.Synset
    counts: dict[str, dict[str | None, int]] = defaultdict(lambda: defaultdict(int))
    for sid, decision, n in session.execute(
        select(c.synset_id, c.decision, func.count()).where(playable()).group_by(c.synset_id, c.decision)
    ):
        counts[sid][decision] = int(n)
    gold = dict(
        session.execute(
            select(c.synset_id, func.count()).join(g, g.candidate_id == c.id).group_by(c.synset_id)
        ).all()
    )
    votes: dict[str, tuple[int, int]] = {}
    for sid, counted, excluded in session.execute(
        select(
            c.synset_id,
            func.sum(case((v.weight > 0, 1), else_=0)),
            func.sum(case((v.weight > 0, 0), else_=1)),
        )
        .join(c, c.id == v.candidate_id)
        .where(v.is_gold.is_(False))
        .group_by(c.synset_id)
    ):
        votes[sid] = (int(counted or 0), int(excluded or 0))
    est: dict[str, float | None] = dict(
        session.execute(
            select(c.synset_id, func.avg(c.confidence))
            .where(playable(), c.decision == "accepted")
            .group_by(c.synset_id)
        ).all()
    )
    truth: dict[str, float | None] = dict(
        session.execute(
            select(c.synset_id, func.avg(case((gt.positive.is_(True), 1.0), else_=0.0)))
            .join(gt, gt.candidate_id == c.id)
            .where(playable(), c.decision == "accepted")
            .group_by(c.synset_id)
        ).all()
    )
    synsets = {
        sid: (lemmas, status) for sid, lemmas, status in session.execute(select(s.id, s.lemmas, s.status))
    }
    cs = schema.CrowdSynset
    live = {
        str(sid): (expected, bool(refreshing) or bool(queued))
        for sid, expected, refreshing, queued in session.execute(
            select(cs.synset_id, cs.expected_votes, cs.refreshing, cs.refresh_queued)
        )
    }
    out = []
    for sid in sorted(set(counts) | set(gold)):
        lemmas, status = synsets.get(sid, ([], "active"))
        row = counts.get(sid, {})
        table = cache.peek(sid) if cache is not None else None
        expected, refreshing = live.get(sid, (None, False))
        if expected is None and table is not None:
            expected = table.expected_votes()
        counted, excluded = votes.get(sid, (0, 0))
        out.append(
            SynsetProgress(
                synset_id=sid,
                name=_name(lemmas, sid),
                status=status,
                candidates=sum(row.values()),
                gold=int(gold.get(sid, 0)),
                accepted=row.get("accepted", 0),
                rejected=row.get("rejected", 0),
                undecided=row.get("undecided", 0),
                open=row.get(None, 0),
                votes=counted,
                votes_excluded=excluded,
                est_precision=_float(est.get(sid)),
                true_precision=_float(truth.get(sid)),
                expected_votes=expected,
                refreshing=refreshing,
            )
        )
    return out


def synset_images(
    session: Session, synset_id: str, settings: CrowdSettings, limit: int = 500
) -> list[ImageRow]:
    """Votes per image of one synset (playable and gold candidates), most-voted first."""
    if session.get(schema.Synset, synset_id) is None:
        raise NotFoundError(f"no synset {synset_id} in this project")
    c, v, g, gt = schema.Candidate, schema.Vote, schema.Gold, schema.GroundTruth
    stats = load_stats(session, synset_id)  # every candidate's votes
    initial = choose_initial(stats, settings) if settings.method == "imagenet" else frozenset()
    excluded = dict(
        session.execute(
            select(v.candidate_id, func.count())
            .join(c, c.id == v.candidate_id)
            .where(c.synset_id == synset_id, v.weight <= 0)
            .group_by(v.candidate_id)
        ).all()
    )
    gold = dict(
        session.execute(
            select(g.candidate_id, g.answer).join(c, c.id == g.candidate_id).where(c.synset_id == synset_id)
        ).all()
    )
    truth = dict(
        session.execute(
            select(gt.candidate_id, gt.positive)
            .join(c, c.id == gt.candidate_id)
            .where(c.synset_id == synset_id)
        ).all()
    )
    rows = [
        ImageRow(cid, st.decision, st.confidence, st.yes_w, st.no_w, st.n_counted, int(excluded.get(cid, 0)),
                 cid in initial, None, truth.get(cid))
        for cid, st in stats.items()
    ]  # fmt: skip
    if gold:
        gold_votes: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
        for cid, label, weight in session.execute(
            select(v.candidate_id, v.label, v.weight).where(v.candidate_id.in_(sorted(gold)))
        ):
            acc = gold_votes[cid]
            acc[0 if label else 1] += weight
            acc[2] += 1
        for cid, answer in gold.items():
            y, n, k = gold_votes.get(cid, [0.0, 0.0, 0])
            rows.append(ImageRow(cid, None, None, y, n, int(k), 0, False, bool(answer), truth.get(cid)))
    rows.sort(key=lambda r: (-r.votes, r.candidate_id))
    return rows[:limit]


def worker_rows(session: Session) -> list[WorkerRow]:
    w, v, t = schema.Worker, schema.Vote, schema.Task
    votes = dict(session.execute(select(v.worker_id, func.count()).group_by(v.worker_id)).all())
    tasks = dict(
        session.execute(
            select(t.worker_id, func.count()).where(t.status == "submitted").group_by(t.worker_id)
        ).all()
    )
    return [
        WorkerRow(x.id, x.kind, x.name, x.external_id, x.status, x.blocked_reason, int(tasks.get(x.id, 0)),
                  int(votes.get(x.id, 0)), x.gold_correct, x.gold_total, x.est_accuracy)
        for x in session.scalars(select(w).order_by(w.id))
    ]  # fmt: skip
