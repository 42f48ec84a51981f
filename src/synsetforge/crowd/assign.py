"""Choosing the images of a worker's next task: what the consensus needs most, never twice to one worker.

Order: synsets still collecting their initial subset first (nothing can be decided without their table),
then the hardest synsets (most expected votes per image); inside a synset, initial images closest to
complete, then the open images with the largest expected need. An image is handed out only while the votes
it still wants exceed the open tasks that already hold it (one at a time for a dynamic-consensus image, up
to `initial_votes` for an initial one), and never to a worker who has voted on it.

Concurrency, so that parallel requests never over-assign an image or give a worker a duplicate:
- every assignment first locks the worker's row, so one worker's requests run one at a time (a worker holds
  at most one open task; asking again returns it);
- PostgreSQL: the chosen candidates are then locked with `FOR NO KEY UPDATE SKIP LOCKED` and their open-task
  counts re-read in a new statement (READ COMMITTED: it sees every assignment committed before the lock), so
  two transactions can never both take an image's last slot, and nobody waits on another's choice;
- SQLite: writes are serialized (the transaction starts with a write, which takes SQLite's single write
  lock, plus an in-process lock so threads queue instead of polling);
- `votes` has UNIQUE(candidate_id, worker_id), the last line of defence.
Expired tasks stop counting at `expires_at`; a periodic sweep marks them `expired`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from synsetforge.crowd.consensus import (
    StateCache,
    SynsetState,
    TableCache,
    load_state,
    playable,
    private_copy,
    refresh_stats,
)
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.errors import NotFoundError
from synsetforge.store import schema

SCAN_SYNSETS = 8  # synsets examined per assignment before settling for the best partial grid


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def lock_worker(session: Session, worker_id: int) -> schema.Worker:
    """Take the worker's row lock (PostgreSQL) / the database write lock (SQLite) and return the worker."""
    w = schema.Worker
    if session.get_bind().dialect.name == "sqlite":
        # A write first: pysqlite opens the transaction here and SQLite grants its one write lock, so all
        # reads below see the latest committed state and nobody else writes until we commit.
        session.execute(update(w).where(w.id == worker_id).values(status=w.status))
        worker = session.get(w, worker_id, populate_existing=True)
    else:
        worker = session.scalars(
            select(w).where(w.id == worker_id).with_for_update().execution_options(populate_existing=True)
        ).first()
    if worker is None:
        raise NotFoundError(f"no worker with id {worker_id}")
    return worker


def sweep_expired(session: Session, now: datetime) -> int:
    """Mark open tasks past their deadline as expired (their images already count as free)."""
    t = schema.Task
    result: Any = session.execute(
        update(t).where(t.status == "open", t.expires_at < now).values(status="expired")
    )
    return int(result.rowcount or 0)


def open_task_of(session: Session, worker_id: int, now: datetime) -> int | None:
    """The worker's open, unexpired task, if any."""
    t = schema.Task
    return session.scalar(
        select(t.id)
        .where(t.worker_id == worker_id, t.status == "open", t.expires_at > now)
        .order_by(t.id.desc())
        .limit(1)
    )


def synset_board(session: Session) -> list[tuple[str, int]]:
    """(synset, open playable candidates) for every active synset with open images."""
    c, s = schema.Candidate, schema.Synset
    rows = session.execute(
        select(c.synset_id, func.count())
        .join(s, s.id == c.synset_id)
        .where(c.decision.is_(None), playable(), s.status != "retired")
        .group_by(c.synset_id)
    )
    return [(sid, int(n)) for sid, n in rows]


def inflight(session: Session, now: datetime, synset_id: str, ids: list[int] | None = None) -> dict[int, int]:
    """How many open, unexpired tasks hold each candidate of the synset (gold items excluded)."""
    t, ti = schema.Task, schema.TaskItem
    q = (
        select(ti.candidate_id, func.count())
        .join(t, t.id == ti.task_id)
        .where(t.synset_id == synset_id, t.status == "open", t.expires_at > now, ti.is_gold.is_(False))
        .group_by(ti.candidate_id)
    )
    if ids is not None:
        q = q.where(ti.candidate_id.in_(ids))
    return {cid: int(n) for cid, n in session.execute(q)}


def voted_by(session: Session, worker_id: int, synset_id: str) -> set[int]:
    c, v = schema.Candidate, schema.Vote
    return set(
        session.scalars(
            select(v.candidate_id)
            .join(c, c.id == v.candidate_id)
            .where(v.worker_id == worker_id, c.synset_id == synset_id)
        )
    )


@dataclass
class _Choice:
    synset_id: str
    state: SynsetState
    ranked: list[int]  # assignable candidates, best first
    slots: dict[int, int]  # candidate -> votes still wanted minus open tasks


def _rank(session: Session, state: SynsetState, worker_id: int, now: datetime) -> _Choice:
    held = inflight(session, now, state.synset_id)
    mine = voted_by(session, worker_id, state.synset_id)
    slots = {}
    for cid in state.stats:
        if cid in mine:
            continue
        free = state.wanted(cid) - held.get(cid, 0)
        if free > 0:
            slots[cid] = free
    ranked = sorted(slots, key=state.priority)
    return _Choice(state.synset_id, state, ranked, slots)


def _synset_order(board: list[tuple[str, int]], settings: CrowdSettings, cache: TableCache) -> list[str]:
    def key(item: tuple[str, int]) -> tuple[int, float, int, str]:
        sid, n_open = item
        if settings.method == "fixed":
            return (0, 0.0, -n_open, sid)
        table = cache.peek(sid)
        if table is None:
            return (0, 0.0, -n_open, sid)  # initial phase (or not seen by this process yet)
        return (1, -table.expected_votes(), -n_open, sid)

    return [sid for sid, _ in sorted(board, key=key)]


def _pick_gold(
    session: Session,
    worker_id: int,
    synset_id: str,
    n: int,
    rng: random.Random,
) -> list[int]:
    """Up to n gold items of the synset the worker has not answered, alternating positives and negatives."""
    if n <= 0:
        return []
    g, c, v = schema.Gold, schema.Candidate, schema.Vote
    rows = session.execute(
        select(g.candidate_id, g.answer)
        .join(c, c.id == g.candidate_id)
        .where(
            c.synset_id == synset_id,
            c.image_id.is_not(None),
            g.candidate_id.not_in(select(v.candidate_id).where(v.worker_id == worker_id)),
        )
        .order_by(g.candidate_id)
    ).all()
    pos = [cid for cid, ans in rows if ans]
    neg = [cid for cid, ans in rows if not ans]
    rng.shuffle(pos)
    rng.shuffle(neg)
    first, second = (pos, neg) if rng.random() < 0.5 else (neg, pos)
    out: list[int] = []
    while len(out) < n and (first or second):
        if first:
            out.append(first.pop())
        first, second = second, first
    return out


def _verify(session: Session, best: _Choice, want: int, now: datetime, postgres: bool) -> list[int]:
    """Up to `want` candidates, best first, that still need a vote *now*, re-read in this transaction.

    The ranking may come from a cached state (`StateCache`), so every candidate handed out is checked
    fresh: its decision, its votes and the open tasks holding it. On PostgreSQL the rows are first locked
    in chunks with `FOR NO KEY UPDATE SKIP LOCKED` (no waiting, and no conflict with the key-share locks
    that inserting votes takes); the checks then run in new statements (READ COMMITTED: they see every
    assignment committed before the lock), and FOR UPDATE returns the latest committed decision. If
    everything left was locked by others at that instant, try again shortly rather than tell the worker
    there is no work. On SQLite the transaction holds the database's write lock, so plain reads are exact.
    """
    c = schema.Candidate
    state = private_copy(best.state)
    picked: list[int] = []
    for attempt in range(5 if postgres else 1):
        skipped = False
        for start in range(0, len(best.ranked), want * 2):
            pool = [x for x in best.ranked[start : start + want * 2] if x not in picked]
            if not pool:
                continue
            q = select(c.id, c.decision).where(c.id.in_(pool))
            if postgres:
                q = q.with_for_update(skip_locked=True, key_share=True)
            rows = session.execute(q).all()
            skipped = skipped or len(rows) < len(pool)
            open_ = {int(cid) for cid, decision in rows if decision is None}
            # Open tasks first, votes second: a submission committing in between is then counted twice
            # (held and voted), never zero times, so the worst case is one slot left unused for a moment.
            held = inflight(session, now, best.synset_id, sorted(open_))
            refresh_stats(session, state, open_, {int(cid): decision for cid, decision in rows})
            picked += [x for x in pool if x in open_ and state.wanted(x) - held.get(x, 0) > 0]
            if len(picked) >= want:
                return picked[:want]
        if picked or not skipped:
            break
        time.sleep(0.02 * (attempt + 1))
    return picked[:want]


def gold_quota(settings: CrowdSettings, gold_answered: int) -> int:
    """Gold images in the worker's next task: `gold_per_task`, more while on probation.

    Until a worker has answered `block_min_gold` gold images the blocking rule cannot judge them, so their
    first task carries the missing gold (up to half the grid): a spammer is caught after one task, before
    their votes shape a synset's confidence table.
    """
    probation = max(settings.block_min_gold - gold_answered, 0)
    return max(settings.gold_per_task, min(probation, settings.grid_size // 2))


def assign_task(
    session: Session,
    worker_id: int,
    settings: CrowdSettings,
    cache: TableCache,
    now: datetime | None = None,
    rng: random.Random | None = None,
    states: StateCache | None = None,
) -> int | None:
    """Create the worker's next task and return its id (None when nothing needs this worker now).

    The caller has locked the worker (`lock_worker`) in the same transaction and checked that they are
    active and hold no open task.
    """
    now = now or datetime.now(UTC)
    rng = rng or random.Random()
    postgres = session.get_bind().dialect.name == "postgresql"
    worker = session.get(schema.Worker, worker_id)
    n_gold = gold_quota(settings, worker.gold_total if worker is not None else 0)
    want = settings.grid_size - n_gold
    enough = max(1, want // 2)
    best: _Choice | None = None
    for sid in _synset_order(synset_board(session), settings, cache)[:SCAN_SYNSETS]:
        state = states.get(sid) if states is not None else None
        choice = _rank(session, state, worker_id, now) if state is not None else None
        if choice is None or len(choice.ranked) < enough:  # not cached, or cached before work appeared
            state = load_state(session, sid, settings, cache)
            if states is not None:
                states.put(state)
            choice = _rank(session, state, worker_id, now)
        if best is None or len(choice.ranked) > len(best.ranked):
            best = choice
        if len(choice.ranked) >= enough:
            break
    if best is None or not best.ranked:
        return None

    gold = _pick_gold(session, worker_id, best.synset_id, n_gold, rng)
    want = settings.grid_size - len(gold)  # regular images fill in for gold the synset lacks
    picked = _verify(session, best, want, now, postgres)
    if (
        len(picked) < min(enough, len(best.ranked))
        and states is not None
        and states.get(best.synset_id) is best.state
    ):
        # the cached ranking was stale (its front-runners got their votes meanwhile): rank afresh once
        states.drop(best.synset_id)
        fresh = _rank(session, load_state(session, best.synset_id, settings, cache), worker_id, now)
        states.put(fresh.state)
        picked = _verify(session, fresh, want, now, postgres)
        best = fresh
    if not picked:
        return None

    task = schema.Task(
        worker_id=worker_id,
        synset_id=best.synset_id,
        kind="verify",
        status="open",
        created_at=now,
        expires_at=now + timedelta(minutes=settings.task_minutes),
    )
    session.add(task)
    session.flush()
    items = [(cid, False) for cid in picked] + [(cid, True) for cid in gold]
    rng.shuffle(items)
    session.add_all(
        schema.TaskItem(task_id=task.id, candidate_id=cid, position=i, is_gold=is_gold)
        for i, (cid, is_gold) in enumerate(items)
    )
    session.flush()
    return task.id
