"""Measured precision of a release: expert audits of a random sample of its images.

Protocol (our design, after Deng et al. 2009's check of 80 synsets and ILSVRC's 1,500-image check):

1. `create_audit` samples N not-yet-audited items per synset (deterministic for a seed: the N smallest
   ``sha256(seed:synset:image)``), and gives each to `redundancy` expert workers as ``tasks.kind = 'audit'``
   tasks (one task per synset and expert), optionally mixed with gold candidates of the synset to measure
   the experts themselves. The crowd web page renders these tasks; `record_audit_answers` stores answers.
2. `estimate_precision` reads the experts' audit votes on the release's items. An item's truth is its gold
   answer when it has one, else the majority of expert votes (ties are reported as disputed and left out).
   Gold items mixed in for measuring experts are not part of the sample and never count.
3. Per synset: precision = correct / audited with a **Wilson score 95% interval**. We use Wilson rather than
   Clopper-Pearson because it is close to nominal coverage without being conservative, and it stays
   informative at p = 1, the common case for a good release (e.g. 50/50 gives [0.929, 1]).
4. Overall: the stratified estimate p = sum_s w_s p_s with w_s = n_s / N over the audited synsets (n_s
   images in the synset), so big synsets weigh what they weigh in the release. Its interval is Wilson's at
   the effective sample size n_eff = p(1-p) / Var(p), Var(p) = sum_s w_s^2 p_s(1-p_s)/m_s (1 - m_s/n_s)
   (Korn & Graubard 1998's approach for complex samples); when that variance is 0 (every stratum all right
   or all wrong) n_eff is the number audited. The pooled share (all audited items together) is reported too.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select

from synsetforge.errors import InputError, NotFoundError
from synsetforge.releases.manifest import iter_items
from synsetforge.releases.release import Release, get_release
from synsetforge.store import schema
from synsetforge.store.project import Project

Z95 = 1.959963984540054


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (n may be an effective, non-integer size)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(max(p * (1 - p) / n + z2 / (4 * n * n), 0.0))
    return (max(0.0, center - half), min(1.0, center + half))


# --- creating audits -----------------------------------------------------------------------------------


@dataclass
class AuditPlan:
    """What `create_audit` made."""

    release: str
    tasks: list[dict[str, Any]] = field(default_factory=list)  # task_id, worker_id, synset, items, gold
    sampled: int = 0
    synsets: int = 0
    exhausted: list[str] = field(default_factory=list)  # synsets with fewer unaudited items than asked


def _experts(project: Project, workers: Sequence[int] | None) -> list[int]:
    with project.session() as s:
        W = schema.Worker
        if workers:
            rows = {w.id: w for w in s.scalars(select(W).where(W.id.in_(list(workers))))}
            for wid in workers:
                if wid not in rows:
                    raise NotFoundError(f"no worker with id {wid}")
                if rows[wid].kind != "expert":
                    raise InputError(
                        f"worker {wid} is a {rows[wid].kind!r} worker; audits need expert workers"
                    )
                if rows[wid].status != "active":
                    raise InputError(f"worker {wid} is {rows[wid].status}")
            return sorted(set(workers))
        found = list(s.scalars(select(W.id).where(W.kind == "expert", W.status == "active").order_by(W.id)))
    if not found:
        raise InputError("the project has no active expert workers to audit with; add one first")
    return found


def _key(seed: int, synset: str, sha: str) -> int:
    return int(hashlib.sha256(f"{seed}:{synset}:{sha}".encode()).hexdigest(), 16)


def create_audit(
    project: Project,
    release_name: str,
    *,
    per_synset: int,
    workers: Sequence[int] | None = None,
    redundancy: int = 1,
    gold_per_task: int = 0,
    seed: int = 0,
    synsets: Sequence[str] | None = None,
) -> AuditPlan:
    """Create audit tasks for expert workers over a random sample of the release's items."""
    if per_synset < 1:
        raise InputError(f"--per-synset must be >= 1, got {per_synset}")
    if gold_per_task < 0:
        raise InputError(f"--gold-per-task must be >= 0, got {gold_per_task}")
    release = get_release(project, release_name)
    experts = _experts(project, workers)
    if not 1 <= redundancy <= len(experts):
        raise InputError(f"--redundancy must be between 1 and the number of experts ({len(experts)})")
    wanted = set(synsets) if synsets else None
    if wanted is not None:
        unknown = sorted(wanted - set(release.synset_ids))
        if unknown:
            raise NotFoundError(f"synset {unknown[0]!r} is not in release {release.name!r}")

    TI, T = schema.TaskItem, schema.Task
    with project.session() as s:
        audited = set(
            s.scalars(
                select(TI.candidate_id)
                .join(T, T.id == TI.task_id)
                .where(T.kind == "audit", T.status != "expired")
            )
        )
    # the N smallest keys per synset, streamed (a bounded max-heap per synset)
    heaps: dict[str, list[tuple[int, int]]] = defaultdict(list)
    available: dict[str, int] = defaultdict(int)
    for item in iter_items(project.blobs, release.manifest_sha256):
        if (wanted is not None and item.synset not in wanted) or item.candidate_id in audited:
            continue
        available[item.synset] += 1
        heap = heaps[item.synset]
        entry = (-_key(seed, item.synset, item.sha256), item.candidate_id)
        if len(heap) < per_synset:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:
            heapq.heapreplace(heap, entry)
    plan = AuditPlan(release=release.name)
    plan.exhausted = sorted(
        sy
        for sy in release.synset_ids
        if (wanted is None or sy in wanted) and available.get(sy, 0) < per_synset
    )
    now = datetime.now(UTC)
    rng = random.Random(seed)
    V, G, C = schema.Vote, schema.Gold, schema.Candidate
    turn = 0
    with project.session() as s:
        for synset in sorted(heaps):
            sample = [cid for _, cid in sorted(heaps[synset], reverse=True)]
            if not sample:
                continue
            voted = set(
                s.execute(
                    select(V.candidate_id, V.worker_id).where(
                        V.candidate_id.in_(sample), V.worker_id.in_(experts)
                    )
                )
            )
            per_worker: dict[int, list[int]] = defaultdict(list)
            for cid in sample:
                given = 0
                for k in range(len(experts)):
                    w = experts[(turn + k) % len(experts)]
                    if (cid, w) not in voted:
                        per_worker[w].append(cid)
                        given += 1
                        if given == redundancy:
                            break
                turn += 1
            golds = list(
                s.scalars(
                    select(G.candidate_id)
                    .join(C, C.id == G.candidate_id)
                    .where(C.synset_id == synset)
                    .order_by(G.candidate_id)
                )
            )
            for w in sorted(per_worker):
                items = per_worker[w]
                gold_voted = set(
                    s.scalars(select(V.candidate_id).where(V.worker_id == w, V.candidate_id.in_(golds)))
                )
                gold_pool = [g for g in golds if g not in gold_voted and g not in items]
                gold = rng.sample(gold_pool, min(gold_per_task, len(gold_pool)))
                entries = [(cid, False) for cid in items] + [(g, True) for g in gold]
                rng.shuffle(entries)
                task = schema.Task(worker_id=w, synset_id=synset, kind="audit", status="open", created_at=now)
                s.add(task)
                s.flush()
                for pos, (cid, is_gold) in enumerate(entries):
                    s.add(schema.TaskItem(task_id=task.id, candidate_id=cid, position=pos, is_gold=is_gold))
                plan.tasks.append(
                    {
                        "task_id": task.id,
                        "worker_id": w,
                        "synset": synset,
                        "items": len(items),
                        "gold": len(gold),
                    }
                )
            plan.sampled += len(sample)
            plan.synsets += 1
    return plan


def record_audit_answers(project: Project, task_id: int, answers: Mapping[int, bool]) -> int:
    """Store an expert's answers to an audit task (candidate id -> "shows the synset?"); returns votes stored.

    Every item of the task must be answered; the task becomes ``submitted`` and the expert's gold tally is
    updated.
    """
    T, TI, W = schema.Task, schema.TaskItem, schema.Worker
    with project.session() as s:
        task = s.get(T, task_id)
        if task is None or task.kind != "audit":
            raise NotFoundError(f"no audit task with id {task_id}")
        if task.status != "open":
            raise InputError(f"audit task {task_id} is {task.status}, not open")
        items = {ti.candidate_id: ti.is_gold for ti in s.scalars(select(TI).where(TI.task_id == task_id))}
        extra = sorted(set(answers) - set(items))
        if extra:
            raise InputError(f"candidate {extra[0]} is not part of audit task {task_id}")
        missing = sorted(set(items) - set(answers))
        if missing:
            raise InputError(
                f"audit task {task_id}: {len(missing)} items unanswered (first: candidate {missing[0]})"
            )
        gold = {
            g.candidate_id: g.answer
            for g in s.scalars(
                select(schema.Gold).where(
                    schema.Gold.candidate_id.in_([c for c, is_gold in items.items() if is_gold])
                )
            )
        }
        now = datetime.now(UTC)
        worker = s.get(W, task.worker_id)
        assert worker is not None
        for cid in sorted(items):
            label = bool(answers[cid])
            s.add(
                schema.Vote(
                    candidate_id=cid,
                    worker_id=task.worker_id,
                    task_id=task_id,
                    label=label,
                    is_gold=items[cid],
                    created_at=now,
                )
            )
            if items[cid] and cid in gold:
                worker.gold_total += 1
                worker.gold_correct += int(label == gold[cid])
        task.status = "submitted"
        task.submitted_at = now
        return len(items)


# --- estimating precision -------------------------------------------------------------------------------


@dataclass
class SynsetPrecision:
    synset: str
    images: int
    audited: int
    correct: int
    disputed: int
    precision: float | None
    low: float | None
    high: float | None


@dataclass
class PrecisionReport:
    """Per-synset and overall precision of a release from expert audits."""

    release: str
    method: str = "Wilson score interval, 95%; overall: stratified by synset, Wilson at effective n"
    synsets: list[SynsetPrecision] = field(default_factory=list)
    audited: int = 0
    correct: int = 0
    disputed: int = 0
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    n_eff: float | None = None
    pooled: float | None = None
    pooled_low: float | None = None
    pooled_high: float | None = None
    audited_share: float = 0.0  # share of the release's images in audited synsets
    experts: list[dict[str, Any]] = field(default_factory=list)  # accuracy on gold
    last_vote: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_precision(project: Project, release: Release | str) -> PrecisionReport:
    """Precision per synset and overall, from expert audit votes on the release's items (see module doc)."""
    rel = get_release(project, release) if isinstance(release, str) else release
    V, T, W, C, RI, G = (
        schema.Vote,
        schema.Task,
        schema.Worker,
        schema.Candidate,
        schema.ReleaseItem,
        schema.Gold,
    )
    sizes = {row["synset"]: int(row["total"]) for row in rel.stats.get("per_synset", [])}
    votes: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    truth: dict[tuple[str, int], bool] = {}
    last: datetime | None = None
    expert_gold: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    with project.session() as s:
        stmt = (
            select(RI.synset_id, RI.image_id, V.label, V.is_gold, G.answer, V.created_at, V.worker_id)
            .select_from(V)
            .join(T, T.id == V.task_id)
            .join(W, W.id == V.worker_id)
            .join(C, C.id == V.candidate_id)
            .join(RI, and_(RI.release_id == rel.id, RI.image_id == C.image_id, RI.synset_id == C.synset_id))
            .outerjoin(G, G.candidate_id == V.candidate_id)
            .where(T.kind == "audit", W.kind == "expert")
        )
        for synset, image_id, label, is_gold, answer, created, _worker in s.execute(stmt):
            if is_gold:
                continue
            key = (synset, int(image_id))
            votes[key][0 if label else 1] += 1
            if answer is not None:
                truth[key] = bool(answer)
            created = created if created is None or created.tzinfo else created.replace(tzinfo=UTC)
            if created is not None and (last is None or created > last):
                last = created
        gold_stmt = (
            select(V.worker_id, V.label, G.answer)
            .select_from(V)
            .join(T, T.id == V.task_id)
            .join(W, W.id == V.worker_id)
            .join(G, G.candidate_id == V.candidate_id)
            .where(T.kind == "audit", W.kind == "expert", V.is_gold.is_(True))
        )
        for worker, label, answer in s.execute(gold_stmt):
            expert_gold[int(worker)][0] += int(bool(label) == bool(answer))
            expert_gold[int(worker)][1] += 1

    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # audited, correct, disputed
    for key, (yes, no) in votes.items():
        synset = key[0]
        if key in truth:
            ok: bool | None = truth[key]
        elif yes != no:
            ok = yes > no
        else:
            ok = None
        if ok is None:
            per[synset][2] += 1
            continue
        per[synset][0] += 1
        per[synset][1] += int(ok)

    report = PrecisionReport(release=rel.name, last_vote=last.isoformat(timespec="seconds") if last else None)
    total_images = sum(sizes.values())
    audited_images = 0
    weighted = 0.0
    variance = 0.0
    for synset in sorted(sizes):
        m, x, disputed = per.get(synset, [0, 0, 0])
        n = sizes[synset]
        p = x / m if m else None
        lo, hi = wilson(x, m) if m else (None, None)
        report.synsets.append(SynsetPrecision(synset, n, m, x, disputed, p, lo, hi))
        report.audited += m
        report.correct += x
        report.disputed += disputed
        if m and p is not None:
            audited_images += n
    if audited_images:
        for row in report.synsets:
            if row.audited and row.precision is not None:
                w = row.images / audited_images
                weighted += w * row.precision
                fpc = max(0.0, 1 - row.audited / row.images) if row.images else 0.0
                variance += w * w * row.precision * (1 - row.precision) / row.audited * fpc
        p = weighted
        n_eff = p * (1 - p) / variance if variance > 0 else float(report.audited)
        report.estimate = p
        report.n_eff = n_eff
        report.low, report.high = wilson(p * n_eff, n_eff)
        report.audited_share = audited_images / total_images if total_images else 0.0
    if report.audited:
        report.pooled = report.correct / report.audited
        report.pooled_low, report.pooled_high = wilson(report.correct, report.audited)
    report.experts = [
        {"worker": w, "gold_correct": c, "gold_total": t, "accuracy": c / t if t else None}
        for w, (c, t) in sorted(expert_gold.items())
    ]
    return report
