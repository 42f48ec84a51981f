"""Live worker-aware decisions (`crowd_method = "worker-aware"`): worker models in the database.

Why: the estimator (`crowd.aggregation.online_ds`) is pure; the live service needs (1) each worker's weights
in a synset group, readable by any process, (2) an image's evidence (sum of its votes' weights) from its
votes, (3) a decision from evidence + the group's prior, and (4) the background refit that re-learns the
worker models from every vote of the group (EM seeded by gold) and stores them.

Synset group: the synset itself (`crowd_worker_group = "synset"`, default: workers are judged per concept,
since one worker can be reliable on "cat" and not on "Burmese cat") or one group for the whole project
(`"all"`). A worker not in the last refit gets the group's population rates as a Beta prior of
`crowd_worker_prior_strength` pseudo-votes, plus their gold answers in the group so far (so a spammer loses
its weight on its first gold answers, before any refit); a group not refitted yet starts from
`crowd_worker_prior_good` and 0.7/0.7 rates.

Tables (migration 0005): `worker_groups` (prior P(good), population rates, votes seen) and `worker_models`
(Beta pseudo-counts per worker and group). Both are a cache of a pure function of the votes: `refit_group`
rewrites them from scratch, so a killed refit is simply run again.

Integration points (called by the incremental consensus): `image_evidence` (recount: the `llr` of the
touched images), `evaluate` (decision + confidence from llr), `uncertainty` (assignment order: the most
uncertain open images first), `refit_group` (the background job body; returns every image's new evidence,
which the caller writes and re-decides). Assignment asks `takes_tasks` (the spread cut) and
`qualification_left` (`crowd_worker_qualify`: tasks of gold alone until the worker answered enough).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from synsetforge.crowd.aggregation.dynamic_consensus import Decision
from synsetforge.crowd.aggregation.online_ds import (
    WorkerModel,
    decide_llr,
    fit_two_coin,
    gold_population,
    logit,
    sigmoid,
)
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import schema

START_RATES = (0.7, 0.7)  # population sensitivity/specificity before a group's first refit
ACCEPTED, REJECTED = "accepted", "rejected"
_VALUE = {Decision.ACCEPT: ACCEPTED, Decision.REJECT: REJECTED, Decision.UNDECIDED: "undecided"}


def group_of(synset_id: str, settings: CrowdSettings) -> str:
    """The synset group whose worker models judge votes on this synset."""
    return synset_id if settings.worker_group == "synset" else "*"


def reject_cut(settings: CrowdSettings) -> float:
    return settings.reject_threshold if settings.reject_threshold is not None else 1.0 - settings.threshold


def evaluate(
    llr: float, n_counted: int, prior_good: float, settings: CrowdSettings
) -> tuple[str | None, float]:
    """(decision or None while open, P(good)) of an image with evidence `llr` from `n_counted` votes."""
    d = decide_llr(
        llr, prior_good, accept=settings.threshold, reject=reject_cut(settings), votes=n_counted,
        min_votes=settings.min_votes, max_votes=settings.max_votes,
    )  # fmt: skip
    return _VALUE.get(d), sigmoid(logit(prior_good) + llr)


def uncertainty(llr: float, prior_good: float, settings: CrowdSettings) -> float:
    """Distance of the posterior log-odds from the middle of the thresholds: smallest = most uncertain."""
    centre = (logit(settings.threshold) + logit(reject_cut(settings))) / 2
    return abs(logit(prior_good) + llr - centre)


@dataclass
class GroupModels:
    """A group's prior and worker models as stored, plus gold answers for workers not yet refitted."""

    group: str
    prior_good: float
    population: tuple[float, float]
    strength: float
    uniform: bool
    fitted: dict[int, WorkerModel] = field(default_factory=dict)
    gold: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)

    def model(self, worker_id: int) -> WorkerModel:
        found = self.fitted.get(worker_id)
        if found is not None:
            return found
        centre = (0.5, 0.5) if self.uniform else self.population
        m = WorkerModel.prior(*centre, self.strength)
        gy, gn, by, bn = self.gold.get(worker_id, (0.0, 0.0, 0.0, 0.0))
        return WorkerModel(m.sens_a + gy, m.sens_b + gn, m.spec_a + bn, m.spec_b + by)

    def weight(self, worker_id: int, label: bool) -> float:
        return self.model(worker_id).weight(label)


def _group_synsets(session: Session, group: str) -> list[str] | None:
    """Synsets of a group (None: every synset)."""
    return None if group == "*" else [group]


def gold_answers(
    session: Session, group: str, workers: Collection[int] | None = None
) -> dict[int, tuple[float, float, float, float]]:
    """Per worker: (yes on good, no on good, yes on bad, no on bad) gold answers in the group."""
    v, g, c = schema.Vote, schema.Gold, schema.Candidate
    q = (
        select(v.worker_id, g.answer, v.label)
        .join(g, g.candidate_id == v.candidate_id)
        .where(v.is_gold.is_(True), v.weight > 0)
    )
    synsets = _group_synsets(session, group)
    if synsets is not None:
        q = q.join(c, c.id == v.candidate_id).where(c.synset_id.in_(synsets))
    if workers is not None:
        q = q.where(v.worker_id.in_(sorted(workers)))
    out: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for worker, answer, label in session.execute(q):
        out[int(worker)][(0 if answer else 2) + (0 if label else 1)] += 1.0
    return {w: (x[0], x[1], x[2], x[3]) for w, x in out.items()}


def load_group(
    session: Session, group: str, settings: CrowdSettings, workers: Collection[int] | None = None
) -> GroupModels:
    """The group's stored models (of `workers` only, when given) and gold answers of unfitted workers."""
    row = session.get(schema.WorkerGroup, group)
    gm = GroupModels(
        group,
        row.prior_good if row is not None else settings.worker_prior_good,
        (row.sensitivity, row.specificity) if row is not None else START_RATES,
        settings.worker_prior_strength,
        settings.worker_population == "uniform",
    )
    wm = schema.WorkerModelRow
    q = select(wm.worker_id, wm.sens_a, wm.sens_b, wm.spec_a, wm.spec_b).where(wm.synset_group == group)
    if workers is not None:
        q = q.where(wm.worker_id.in_(sorted(workers)))
    for worker, sa_, sb, fa, fb in session.execute(q):
        gm.fitted[int(worker)] = WorkerModel(float(sa_), float(sb), float(fa), float(fb))
    unfitted = None if workers is None else [w for w in workers if w not in gm.fitted]
    if unfitted is None or unfitted:
        gm.gold = gold_answers(session, group, unfitted)
    return gm


def image_evidence(
    session: Session, candidate_ids: Iterable[int], settings: CrowdSettings
) -> dict[int, tuple[float, int]]:
    """(llr, counted votes) of each candidate from its non-gold votes: sum of vote weight x the worker's
    weight of evidence (a blocked worker's excluded votes have weight 0 and add nothing)."""
    ids = sorted({int(c) for c in candidate_ids})
    if not ids:
        return {}
    v, c = schema.Vote, schema.Candidate
    rows = session.execute(
        select(v.candidate_id, c.synset_id, v.worker_id, v.label, v.weight)
        .join(c, c.id == v.candidate_id)
        .where(v.candidate_id.in_(ids), v.is_gold.is_(False), v.weight > 0)
    ).all()
    by_group: dict[str, set[int]] = defaultdict(set)
    for _, sid, worker, _, _ in rows:
        by_group[group_of(sid, settings)].add(int(worker))
    groups = {g: load_group(session, g, settings, ws) for g, ws in by_group.items()}
    out = dict.fromkeys(ids, (0.0, 0))
    for cid, sid, worker, label, weight in rows:
        llr, n = out[int(cid)]
        w = groups[group_of(sid, settings)].weight(int(worker), bool(label))
        out[int(cid)] = (llr + float(weight) * w, n + 1)
    return out


def prior_of(session: Session, synset_id: str, settings: CrowdSettings) -> float:
    row = session.get(schema.WorkerGroup, group_of(synset_id, settings))
    return row.prior_good if row is not None else settings.worker_prior_good


@dataclass(frozen=True)
class Refit:
    """What a refit stored: the group's prior, how many votes it saw, and every image's new evidence."""

    group: str
    prior_good: float
    votes: int
    workers: int
    evidence: dict[int, tuple[float, int]]


def refit_group(session: Session, group: str, settings: CrowdSettings) -> Refit:
    """The background job body: EM over every counted vote of the group (gold answers pinned), then the
    group's prior and worker models are replaced and each voted image's new (llr, votes) returned.

    Vote weights below 1 (down-weighted blocked workers) scale their votes in the E-step sums only by being
    left out when 0; a down-weighted vote counts fully in the fit (its worker's model says how much it is
    worth)."""
    v, c = schema.Vote, schema.Candidate
    q = (
        select(v.candidate_id, v.worker_id, v.label, v.weight)
        .join(c, c.id == v.candidate_id)
        .where(v.is_gold.is_(False), v.weight > 0)
        .order_by(v.id)
    )
    synsets = _group_synsets(session, group)
    if synsets is not None:
        q = q.where(c.synset_id.in_(synsets))
    rows = session.execute(q).all()
    gold = gold_answers(session, group)
    now = datetime.now(UTC)
    session.execute(delete(schema.WorkerModelRow).where(schema.WorkerModelRow.synset_group == group))
    session.execute(delete(schema.WorkerGroup).where(schema.WorkerGroup.synset_group == group))
    prior = settings.worker_prior_good
    population = gold_population(gold, START_RATES) if settings.worker_population == "gold" else START_RATES
    models: dict[int, WorkerModel] = {}
    evidence: dict[int, tuple[float, int]] = {}
    if rows:
        items = [int(r[0]) for r in rows]
        workers = [int(r[1]) for r in rows]
        labels = np.asarray([bool(r[2]) for r in rows], dtype=bool)
        fit = fit_two_coin(
            items, workers, labels, gold, prior_good=settings.worker_prior_good, start=START_RATES,
            strength=settings.worker_prior_strength, uniform=settings.worker_population == "uniform",
            centre=population if settings.worker_population == "gold" else None,
        )  # fmt: skip
        prior, population = fit.prior_good, fit.population
        models = {int(w): m for w, m in zip(fit.workers, fit.models, strict=True)}
        weights = {w: (m.weight(True), m.weight(False)) for w, m in models.items()}
        acc: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for cid, worker, label, weight in rows:
            pair = acc[int(cid)]
            pair[0] += float(weight) * weights[int(worker)][0 if label else 1]
            pair[1] += 1
        evidence = {cid: (x[0], int(x[1])) for cid, x in acc.items()}
    centre = (0.5, 0.5) if settings.worker_population == "uniform" else population
    for worker, (gy, gn, by, bn) in gold.items():  # gold-only workers: gold answers on the new population
        if worker not in models:
            m = WorkerModel.prior(*centre, settings.worker_prior_strength)
            models[worker] = WorkerModel(m.sens_a + gy, m.sens_b + gn, m.spec_a + bn, m.spec_b + by)
    session.add(
        schema.WorkerGroup(
            synset_group=group, prior_good=prior, sensitivity=population[0], specificity=population[1],
            votes=len(rows), updated_at=now,
        )
    )  # fmt: skip
    if models:
        session.execute(
            insert(schema.WorkerModelRow),
            [
                {
                    "synset_group": group, "worker_id": w, "sens_a": m.sens_a, "sens_b": m.sens_b,
                    "spec_a": m.spec_a, "spec_b": m.spec_b, "updated_at": now,
                }
                for w, m in sorted(models.items())
            ],
        )  # fmt: skip
    return Refit(group, prior, len(rows), len(models), evidence)


def refit_due(session: Session, group: str, settings: CrowdSettings, votes_now: int) -> bool:
    """Refit when the group's votes grew by `crowd_worker_refit_votes` (or doubled, early on) since."""
    row = session.get(schema.WorkerGroup, group)
    seen = row.votes if row is not None else 0
    return votes_now - seen >= min(max(seen, 20), settings.worker_refit_votes)


def worker_weights(session: Session, group: str, settings: CrowdSettings) -> list[dict[str, float]]:
    """Rows for people (dashboard / CLI): worker, sensitivity, specificity, yes and no weight."""
    gm = load_group(session, group, settings)
    out = []
    for w in sorted(set(gm.fitted) | set(gm.gold)):
        m = gm.model(w)
        out.append(
            {
                "worker": float(w), "sensitivity": m.sensitivity, "specificity": m.specificity,
                "yes_weight": m.weight(True), "no_weight": m.weight(False),
            }
        )  # fmt: skip
    return out


def cell(llr: float, prior_good: float, settings: CrowdSettings) -> int:
    """An int bucket of `uncertainty` (quarter nats, capped at 999) for an index range scan over open
    images: the smallest cell holds the most uncertain images."""
    return min(int(uncertainty(llr, prior_good, settings) * 4), 999)


def _ranked(session: Session, group: str, settings: CrowdSettings) -> list[tuple[float, bool, int]]:
    """(spread, answered enough, worker) of every worker in the group's last refit, most informative first."""
    wm = schema.WorkerModelRow
    prior = 2 * settings.worker_prior_strength  # pseudo-votes of the Beta priors
    ranked = []
    for worker, sa_, sb, fa, fb in session.execute(
        select(wm.worker_id, wm.sens_a, wm.sens_b, wm.spec_a, wm.spec_b).where(wm.synset_group == group)
    ):
        model = WorkerModel(float(sa_), float(sb), float(fa), float(fb))
        answers = round(sa_ + sb + fa + fb - prior, 6)  # 20 answers on a prior of 4 x 0.868 read 19.99999
        ranked.append((model.spread, answers >= settings.worker_min_evidence, int(worker)))
    ranked.sort(reverse=True)
    return ranked


def excluded_workers(session: Session, group: str, settings: CrowdSettings) -> set[int]:
    """Workers of the group's last refit who answered enough (gold + votes, `worker_min_evidence`) and
    separate yes from no by less than `worker_min_spread` nats: they get no more tasks of the group.

    The `max_votes` most informative workers of the group are always kept, so that an image can still
    reach its vote cap (in a small crowd, excluding everyone below the bar left images open for good:
    every worker still allowed had voted on them)."""
    if settings.worker_min_spread <= 0:
        return set()
    return _below_bar(_ranked(session, group, settings), settings)


def _below_bar(ranked: list[tuple[float, bool, int]], settings: CrowdSettings) -> set[int]:
    return {
        worker
        for spread_, enough, worker in ranked[settings.max_votes :]
        if enough and spread_ < settings.worker_min_spread
    }


def takes_tasks(session: Session, worker_id: int, synset_id: str, settings: CrowdSettings) -> bool:
    """Whether the worker may get (more) images of this synset under worker-aware decisions.

    A worker the last refit knows is judged by `excluded_workers`; one who came later (a qualification
    answered since, say) by their model from gold answers so far, with the same evidence and spread bars,
    and kept when fewer than `max_votes` refitted workers are more informative."""
    if settings.method != "worker-aware" or settings.worker_min_spread <= 0:
        return True
    group = group_of(synset_id, settings)
    ranked = _ranked(session, group, settings)
    if any(worker == worker_id for _, _, worker in ranked):
        return worker_id not in _below_bar(ranked, settings)
    gm = load_group(session, group, settings, [worker_id])
    answers = sum(gm.gold.get(worker_id, (0.0,)))
    own = gm.model(worker_id).spread
    if answers < settings.worker_min_evidence or own >= settings.worker_min_spread:
        return True
    return sum(spread_ > own for spread_, _, _ in ranked) < settings.max_votes


def qualification_left(session: Session, worker_id: int, synset_id: str, settings: CrowdSettings) -> int:
    """Gold images the worker still has to answer in the synset's group before getting its candidates
    (`worker_qualify`; 0 when qualified or when the setting or the method is off)."""
    if settings.method != "worker-aware" or settings.worker_qualify <= 0:
        return 0
    answered = gold_answers(session, group_of(synset_id, settings), [worker_id]).get(worker_id, (0.0,))
    return max(settings.worker_qualify - int(sum(answered)), 0)
