"""`crowd aggregate`: recompute every candidate's decision from all votes, with a chosen method.

Methods (estimators from `crowd.aggregation`):
- "imagenet": dynamic consensus, exactly the live rule (confidence tables per synset, see
  `crowd.consensus`), re-run over every candidate; synsets where no image reached a majority are flagged
  `not_imageable` (SPEC §3).
- "majority": the majority of the votes that count (weighted by `votes.weight`; a tie rejects).
- "dawid-skene": Dawid & Skene EM over all counted votes, gold images pinned to their answers; accept
  when P(good) >= 0.5.
Each writes `candidates.decision` / `confidence` (= P(good), for every method) and `workers.est_accuracy`;
gold images get their known answer with confidence 1.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, select, update

from synsetforge.crowd.aggregation import DawidSkene, MajorityVote
from synsetforge.crowd.consensus import load_state, playable
from synsetforge.crowd.report import TruthReport, truth_report
from synsetforge.crowd.service import CrowdService
from synsetforge.errors import InputError
from synsetforge.store import schema

METHODS = ("imagenet", "majority", "dawid-skene")


@dataclass(frozen=True)
class AggregateSummary:
    method: str
    images: int
    accepted: int
    rejected: int
    undecided: int
    open: int
    votes: int
    workers: int
    est_precision: float | None
    not_imageable: tuple[str, ...]
    truth: TruthReport | None

    def lines(self) -> list[str]:
        est = "n/a" if self.est_precision is None else f"{self.est_precision:.2%}"
        out = [
            f"method {self.method}: {self.images} images, {self.votes} votes that count",
            f"accepted {self.accepted}, rejected {self.rejected}, undecided {self.undecided}, open {self.open}",
            f"estimated precision of accepted images {est}; est_accuracy written for {self.workers} workers",
        ]
        if self.not_imageable:
            out.append(
                f"not easily illustrated (no image reached a majority): {', '.join(self.not_imageable)}"
            )
        if self.truth is not None and self.truth.images:
            out.append("against ground truth: " + self.truth.summary())
        return out


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


def aggregate(service: CrowdService, method: str = "imagenet") -> AggregateSummary:
    """Recompute decisions for the whole project (see the module docstring)."""
    if method not in METHODS:
        raise InputError(f"unknown aggregation method {method!r}; choose one of {list(METHODS)}")
    settings = service.settings
    c, v, g = schema.Candidate, schema.Vote, schema.Gold
    flagged: list[str] = []
    with service.write() as s:
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
        decisions: dict[int, tuple[str | None, float | None]] = {}
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
            labels = {
                cid: d == "accepted" for cid, (d, _) in decisions.items() if d in ("accepted", "rejected")
            }
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
                int(w): float(a)
                for w, a in zip(ds.workers.tolist(), ds.worker_accuracy.tolist(), strict=True)
            }
        for cid, answer in gold.items():
            decisions[cid] = ("accepted" if answer else "rejected", 1.0 if answer else 0.0)
        _write(s, decisions)
        _write_accuracy(s, accuracy)
        if flagged:
            s.execute(
                update(schema.Synset).where(schema.Synset.id.in_(flagged)).values(status="not_imageable")
            )
    with service.read() as s:
        counts: dict[str | None, int] = defaultdict(int)
        conf_sum = 0.0
        for decision, conf in s.execute(select(c.decision, c.confidence).where(playable())):
            counts[decision] += 1
            if decision == "accepted" and conf is not None:
                conf_sum += float(conf)
        truth = truth_report(s)
    acc = counts.get("accepted", 0)
    return AggregateSummary(
        method=method,
        images=sum(counts.values()),
        accepted=acc,
        rejected=counts.get("rejected", 0),
        undecided=counts.get("undecided", 0),
        open=counts.get(None, 0),
        votes=len(regular),
        workers=len(accuracy),
        est_precision=conf_sum / acc if acc else None,
        not_imageable=tuple(flagged),
        truth=truth if truth.images else None,
    )
