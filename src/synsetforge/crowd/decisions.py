"""`crowd aggregate`: recompute every candidate's decision from all votes, with a chosen method.

Recomputing is explicit: by default `aggregate` only says what would change (decision counts before and
after, overall and per synset, and against ground truth where the project has it) and writes nothing; with
``write=True`` (`crowd aggregate --write`) it replaces the decisions and records the method and its
settings (`crowd.record`), which the admin dashboard, `crowd status` and new releases then name.

Methods (estimators from `crowd.aggregation`):
- "imagenet": dynamic consensus, exactly the live rule (confidence tables per synset, see
  `crowd.consensus`), re-run over every candidate; synsets where no image reached a majority are flagged
  `not_imageable` (SPEC §3).
- "majority": the majority of the votes that count (weighted by `votes.weight`; a tie rejects).
- "dawid-skene": Dawid & Skene EM over all counted votes, gold images pinned to their answers; accept
  when P(good) >= 0.5.
Writing sets `candidates.decision` / `confidence` (= P(good), for every method) and `workers.est_accuracy`;
gold images get their known answer with confidence 1.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from synsetforge.crowd.aggregation import DawidSkene, MajorityVote
from synsetforge.crowd.consensus import load_state, playable
from synsetforge.crowd.record import DecisionRecord, method_settings, read_record, record_aggregate
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.tallies import resync_open
from synsetforge.errors import InputError
from synsetforge.store import schema

METHODS = ("imagenet", "majority", "dawid-skene")
STATES = ("accepted", "rejected", "undecided", "open")
"""Decision states as counted (``open``: no decision yet)."""

Decision = tuple[str | None, float | None]


def _state(decision: str | None) -> str:
    return decision if decision in STATES else "open"


@dataclass(frozen=True)
class SynsetChange:
    """One synset's decision counts before and after, and how many of its images change decision."""

    synset_id: str
    before: dict[str, int]
    after: dict[str, int]
    changed: int

    def as_dict(self) -> dict[str, Any]:
        return {"synset": self.synset_id, "before": self.before, "after": self.after, "changed": self.changed}


@dataclass(frozen=True)
class TruthCompare:
    """Precision and recall of accepted images against ground truth, before and after."""

    images: int
    positives: int
    before: tuple[int, int]  # (accepted, truly good among them)
    after: tuple[int, int]

    @staticmethod
    def _rates(acc: tuple[int, int], positives: int) -> tuple[float, float]:
        n, good = acc
        return (good / n if n else float("nan"), good / positives if positives else float("nan"))

    def summary(self, written: bool) -> str:
        p0, r0 = self._rates(self.before, self.positives)
        p1, r1 = self._rates(self.after, self.positives)
        arrow = "->" if not written else "now"
        return (
            f"precision {p0:.2%} {arrow} {p1:.2%} ({self.after[1]} truly good of {self.after[0]} accepted), "
            f"recall {r0:.2%} {arrow} {r1:.2%}, on {self.images} images with ground truth"
        )

    def as_dict(self) -> dict[str, Any]:
        p0, r0 = self._rates(self.before, self.positives)
        p1, r1 = self._rates(self.after, self.positives)

        def num(x: float) -> float | None:
            return None if x != x else x

        return {
            "images": self.images,
            "positives": self.positives,
            "before": {"precision": num(p0), "recall": num(r0)},
            "after": {"precision": num(p1), "recall": num(r1)},
        }


@dataclass(frozen=True)
class AggregateSummary:
    """What `aggregate` found: counts before and after, the changes, and whether it wrote them."""

    method: str
    settings: dict[str, Any]
    written: bool
    images: int
    before: dict[str, int]
    after: dict[str, int]
    changed: int  # playable images whose decision changes
    confidence_changed: int  # playable images whose confidence changes (decision or not)
    gold_changed: int  # gold images set to their known answer
    per_synset: tuple[SynsetChange, ...]  # synsets with at least one change
    votes: int
    workers: int
    est_precision: float | None  # mean P(good) of accepted images, after
    not_imageable: tuple[str, ...]
    truth: TruthCompare | None
    previous: DecisionRecord | None  # the record of the decisions before this run
    record: DecisionRecord | None = None  # the new record, when written

    # counts as the old summary named them (after the run)
    @property
    def accepted(self) -> int:
        return self.after["accepted"]

    @property
    def rejected(self) -> int:
        return self.after["rejected"]

    @property
    def undecided(self) -> int:
        return self.after["undecided"]

    @property
    def open(self) -> int:
        return self.after["open"]

    def lines(self) -> list[str]:
        """The summary as text lines (the CLI adds the per-synset table)."""
        est = "n/a" if self.est_precision is None else f"{self.est_precision:.2%}"
        counts = ", ".join(f"{k} {self.before[k]} -> {self.after[k]}" for k in STATES)
        current = self.previous.describe() if self.previous is not None else "not recorded"
        verb = "changed" if self.written else "would change"
        out = [
            f"method {self.method}: {self.images} images, {self.votes} votes that count",
            f"decisions before: {current}",
            f"{counts}",
            f"{self.changed} decisions {verb} ({len(self.per_synset)} synsets), "
            f"{self.confidence_changed} confidences"
            + (f", {self.gold_changed} gold answers" if self.gold_changed else ""),
            f"estimated precision of accepted images {est}; est_accuracy for {self.workers} workers",
        ]
        if self.not_imageable:
            out.append(
                f"not easily illustrated (no image reached a majority): {', '.join(self.not_imageable)}"
            )
        if self.truth is not None and self.truth.images:
            out.append("against ground truth: " + self.truth.summary(False))
        if self.written and self.record is not None:
            out.append(f"written; decisions now: {self.record.describe()}")
        else:
            out.append("dry run: nothing written (rerun with --write to replace the decisions)")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "settings": self.settings,
            "written": self.written,
            "images": self.images,
            "before": self.before,
            "after": self.after,
            "changed": self.changed,
            "confidence_changed": self.confidence_changed,
            "gold_changed": self.gold_changed,
            "per_synset": [c.as_dict() for c in self.per_synset],
            "votes": self.votes,
            "workers": self.workers,
            "est_precision": self.est_precision,
            "not_imageable": list(self.not_imageable),
            "truth": self.truth.as_dict() if self.truth is not None else None,
            "previous": self.previous.as_dict() if self.previous is not None else None,
            "record": self.record.as_dict() if self.record is not None else None,
        }


def _write(session: Any, decisions: dict[int, tuple[str | None, float | None]]) -> None:
    t = schema.Candidate.__table__
    assert isinstance(t, Table)
    rows = [{"_id": c, "_d": d, "_c": conf} for c, (d, conf) in sorted(decisions.items())]
    for i in range(0, len(rows), 5000):
        session.connection().execute(
            update(t)
            .where(t.c.id == bindparam("_id"))
            .values(decision=bindparam("_d"), confidence=bindparam("_c")),
            rows[i : i + 5000],
        )


def _write_accuracy(session: Any, accuracy: dict[int, float]) -> None:
    t = schema.Worker.__table__
    assert isinstance(t, Table)
    rows = [{"_id": w, "_a": None if np.isnan(a) else float(a)} for w, a in sorted(accuracy.items())]
    if rows:
        session.connection().execute(
            update(t).where(t.c.id == bindparam("_id")).values(est_accuracy=bindparam("_a")), rows
        )


def _agreement(votes: list[tuple[int, int, bool, float]], decided: dict[int, bool]) -> dict[int, float]:
    """Share of each worker's counted votes that agree with the decided label."""
    right: dict[int, float] = defaultdict(float)
    total: dict[int, float] = defaultdict(float)
    for cid, wid, label, _w in votes:
        if cid in decided:
            total[wid] += 1
            right[wid] += float(label == decided[cid])
    return {w: right[w] / total[w] for w in total}


@dataclass
class _Plan:
    decisions: dict[int, Decision]
    accuracy: dict[int, float]
    flagged: list[str]
    votes: int


def _compute(s: Session, service: CrowdService, method: str) -> _Plan:
    """The decisions `method` makes from the votes as they are now (reads only)."""
    settings = service.settings
    c, v, g = schema.Candidate, schema.Vote, schema.Gold
    flagged: list[str] = []
    gold = {int(cid): bool(a) for cid, a in s.execute(select(g.candidate_id, g.answer))}
    votes = [
        (int(cid), int(wid), bool(lab), float(w))
        for cid, wid, lab, w in s.execute(
            select(v.candidate_id, v.worker_id, v.label, v.weight)
            .join(c, c.id == v.candidate_id)
            .where(v.weight > 0, c.status == "stored")
            .order_by(v.id)
        )
    ]
    regular = [x for x in votes if x[0] not in gold]
    decisions: dict[int, Decision] = {}
    accuracy: dict[int, float] = {}
    if method == "imagenet":
        synsets = sorted(set(s.scalars(select(c.synset_id).where(playable()).distinct())))
        for sid in synsets:
            state = load_state(s, sid, settings, service.tables, complete=True)
            for cid in state.stats:
                decisions[cid] = state.evaluate(cid)
            table = state.table
            accepted = any(d == "accepted" for d, _ in (decisions[x] for x in state.stats))
            if table is not None and not table.easily_illustrated and not accepted:
                flagged.append(sid)
        labels = {cid: d == "accepted" for cid, (d, _) in decisions.items() if d in ("accepted", "rejected")}
        accuracy = _agreement(regular, labels)
    elif regular and method == "majority":
        yes_w: dict[int, float] = defaultdict(float)
        no_w: dict[int, float] = defaultdict(float)
        for cid, _wid, lab, w in regular:
            (yes_w if lab else no_w)[cid] += w
        if all(w == 1.0 for *_, w in regular):
            mv = MajorityVote(ties="lowest").fit_predict(
                [(cid, wid, lab) for cid, wid, lab, _ in regular], label_values=[False, True]
            )
            accuracy = {
                int(w): float(a)
                for w, a in zip(mv.workers.tolist(), mv.worker_accuracy.tolist(), strict=True)
            }
        for cid in set(yes_w) | set(no_w):
            share = yes_w[cid] / (yes_w[cid] + no_w[cid])
            decisions[cid] = ("accepted" if yes_w[cid] > no_w[cid] else "rejected", share)
        if not accuracy:
            accuracy = _agreement(regular, {cid: d == "accepted" for cid, (d, _) in decisions.items()})
    elif regular:
        ds = DawidSkene().fit_predict(
            [(cid, wid, lab) for cid, wid, lab, _ in votes], label_values=[False, True], gold=gold
        )
        p_good = ds.probas[:, 1]
        for cid, p in zip(ds.tasks.tolist(), p_good.tolist(), strict=True):
            if int(cid) not in gold:
                decisions[int(cid)] = ("accepted" if p >= 0.5 else "rejected", float(p))
        accuracy = {
            int(w): float(a) for w, a in zip(ds.workers.tolist(), ds.worker_accuracy.tolist(), strict=True)
        }
    for cid, answer in gold.items():
        decisions[cid] = ("accepted" if answer else "rejected", 1.0 if answer else 0.0)
    return _Plan(decisions, accuracy, flagged, len(regular))


def _same_confidence(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-9)


def _summarize(
    s: Session, service: CrowdService, method: str, plan: _Plan, previous: DecisionRecord | None
) -> AggregateSummary:
    """Counts before (the store as it is) and after (`plan` applied), per synset and against ground truth."""
    c, gt = schema.Candidate, schema.GroundTruth
    gold = set(s.scalars(select(schema.Gold.candidate_id)))
    gold_changed = 0
    for cid, d, conf in s.execute(select(c.id, c.decision, c.confidence).where(c.id.in_(sorted(gold)))):
        known = plan.decisions.get(int(cid))
        if known is not None and (known[0] != d or not _same_confidence(known[1], conf)):
            gold_changed += 1
    truth = dict(
        s.execute(
            select(gt.candidate_id, gt.positive).join(c, c.id == gt.candidate_id).where(playable())
        ).all()
    )
    zero = dict.fromkeys(STATES, 0)
    before, after = dict(zero), dict(zero)
    per_before: dict[str, dict[str, int]] = defaultdict(lambda: dict(zero))
    per_after: dict[str, dict[str, int]] = defaultdict(lambda: dict(zero))
    per_changed: dict[str, int] = defaultdict(int)
    changed = conf_changed = images = 0
    conf_sum = 0.0
    acc_before = [0, 0]
    acc_after = [0, 0]
    positives = 0
    for cid, sid, d, conf in s.execute(select(c.id, c.synset_id, c.decision, c.confidence).where(playable())):
        images += 1
        new_d, new_conf = plan.decisions.get(int(cid), (d, conf))
        old, new = _state(d), _state(new_d)
        before[old] += 1
        after[new] += 1
        per_before[sid][old] += 1
        per_after[sid][new] += 1
        if old != new:
            changed += 1
            per_changed[sid] += 1
        if old != new or not _same_confidence(conf, new_conf):
            conf_changed += 1
        if new == "accepted" and new_conf is not None:
            conf_sum += float(new_conf)
        if cid in truth:
            good = bool(truth[cid])
            positives += good
            if old == "accepted":
                acc_before[0] += 1
                acc_before[1] += good
            if new == "accepted":
                acc_after[0] += 1
                acc_after[1] += good
    per_synset = tuple(
        SynsetChange(sid, per_before[sid], per_after[sid], per_changed[sid]) for sid in sorted(per_changed)
    )
    return AggregateSummary(
        method=method,
        settings=method_settings(method, service.settings),
        written=False,
        images=images,
        before=before,
        after=after,
        changed=changed,
        confidence_changed=conf_changed,
        gold_changed=gold_changed,
        per_synset=per_synset,
        votes=plan.votes,
        workers=len(plan.accuracy),
        est_precision=conf_sum / after["accepted"] if after["accepted"] else None,
        not_imageable=tuple(plan.flagged),
        truth=TruthCompare(
            len(truth), positives, (acc_before[0], acc_before[1]), (acc_after[0], acc_after[1])
        )
        if truth
        else None,
        previous=previous,
    )


def aggregate(service: CrowdService, method: str = "imagenet", *, write: bool = False) -> AggregateSummary:
    """Recompute every decision with `method` and say what changes; replace them only when `write`.

    A dry run (the default) reads only. `write=True` computes and writes in one transaction, and records
    the method and its settings as the source of the current decisions (see the module docstring).
    """
    if method not in METHODS:
        raise InputError(f"unknown aggregation method {method!r}; choose one of {list(METHODS)}")
    if not write:
        with service.read() as s:
            plan = _compute(s, service, method)
            return _summarize(s, service, method, plan, read_record(s))
    with service.write() as s:
        plan = _compute(s, service, method)
        summary = _summarize(s, service, method, plan, read_record(s))
        _write(s, plan.decisions)
        resync_open(s)  # the live state's open images follow the written decisions
        _write_accuracy(s, plan.accuracy)
        if plan.flagged:
            s.execute(
                update(schema.Synset).where(schema.Synset.id.in_(plan.flagged)).values(status="not_imageable")
            )
        record = record_aggregate(s, method, service.settings)
    return dataclasses.replace(summary, written=True, record=record)
