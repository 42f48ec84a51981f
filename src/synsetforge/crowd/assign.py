"""Choosing the images of a worker's next task: what the consensus needs most, never twice to one worker.

Order: synsets still collecting their initial subset first (nothing can be decided without their table),
then the hardest synsets (most expected votes per image); inside a synset, initial images closest to
complete, then the open images with the largest expected need. Everything is read from the incremental
state (`crowd.tallies`): the synset board from `crowd_synsets`, candidates from `crowd_images` by
(synset, table cell, hash) with a LIMIT of about twice the grid, so the cost does not grow with the
synset. Ranking runs on a read snapshot before any lock (`plan_task`); the locked part only re-checks the
chosen candidates and inserts the task. An image is handed out only while the votes
it still wants exceed the open tasks that already hold it (one at a time for a dynamic-consensus image, up
to `initial_votes` for an initial one), and never to a worker who has voted on it.

Concurrency, so that parallel requests never over-assign an image or give a worker a duplicate:
- every assignment first locks the worker's row, so one worker's requests run one at a time (a worker holds
  at most one open task; asking again returns it);
- PostgreSQL: the chosen candidates are then claimed with transaction-scoped advisory locks, taken only
  where free (`pg_try_advisory_xact_lock`, see `_CLAIM`), and their open-task counts re-read in a new
  statement (READ COMMITTED: it sees every assignment committed before the claim), so two transactions can
  never both take an image's last slot, and nobody waits on another's choice;
- SQLite: writes are serialized (the transaction starts with a write, which takes SQLite's single write
  lock, plus an in-process lock so threads queue instead of polling);
- `votes` has UNIQUE(candidate_id, worker_id), the last line of defence.
Expired tasks stop counting at `expires_at`; a periodic sweep marks them `expired`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, select, text, true, union_all, update
from sqlalchemy.orm import Session

from synsetforge.crowd.consensus import ImageStats, SynsetState
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.crowd.tallies import (
    CELL,
    ROW_COLUMNS,
    StoredTables,
    SynsetInfo,
    initial_complete,
    stats_of,
)
from synsetforge.errors import NotFoundError
from synsetforge.store import schema
from synsetforge.store.idlist import BulkInsert, PerDialect, ids_in, table_of, unnest_arrays

SCAN_SYNSETS = 8  # synsets examined per assignment before settling for the best partial grid


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_W = schema.Worker
_TOUCH_WORKER = update(_W).where(_W.id == bindparam("wid")).values(status=_W.status)
_LOCK_WORKER = (
    select(_W).where(_W.id == bindparam("wid")).with_for_update().execution_options(populate_existing=True)
)


def lock_worker(session: Session, worker_id: int) -> schema.Worker:
    """Take the worker's row lock (PostgreSQL) / the database write lock (SQLite) and return the worker."""
    if session.get_bind().dialect.name == "sqlite":
        # A write first: pysqlite opens the transaction here and SQLite grants its one write lock, so all
        # reads below see the latest committed state and nobody else writes until we commit.
        session.connection().execute(_TOUCH_WORKER, {"wid": worker_id})
        worker = session.get(_W, worker_id, populate_existing=True)
    else:
        worker = session.scalars(_LOCK_WORKER, {"wid": worker_id}).first()
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
    found = session.connection().execute(OPEN_TASK, {"wid": worker_id, "now": now}).scalar()
    return None if found is None else int(found)


def synset_board(session: Session, settings: CrowdSettings, limit: int | None = None) -> list[SynsetInfo]:
    """Active synsets with open images, best first, from the per-synset counters (`crowd_synsets`):
    synsets without a table (initial phase) first, then the hardest (most expected votes per image)."""
    cs, s = schema.CrowdSynset, schema.Synset
    rows = session.scalars(
        select(cs).join(s, s.id == cs.synset_id).where(cs.n_open > 0, s.status != "retired")
    ).all()

    def key(r: schema.CrowdSynset) -> tuple[int, float, int, str]:
        if settings.method == "fixed" or r.expected_votes is None:
            return (0, 0.0, -r.n_open, r.synset_id)
        return (1, -float(r.expected_votes), -r.n_open, r.synset_id)

    ordered = sorted(rows, key=key)
    return [SynsetInfo.of(r) for r in (ordered if limit is None else ordered[:limit])]


# The hottest statements, built once: executed on the session's connection (Core, not the ORM), they skip
# rebuilding the expression and the ORM's result handling, most of what a short indexed query cost here.
_T, _TI, _V = schema.Task, schema.TaskItem, schema.Vote
# Lists of ids go in as one array on PostgreSQL (`store.idlist`).
_VOTED = PerDialect(
    lambda d: select(_V.candidate_id).where(_V.worker_id == bindparam("wid"), ids_in(_V.candidate_id, d))
)
OPEN_TASK = (
    select(_T.id)
    .where(_T.worker_id == bindparam("wid"), _T.status == "open", _T.expires_at > bindparam("now"))
    .order_by(_T.id.desc())
    .limit(1)
)
_CI = schema.CrowdImage


def _held(dialect: str) -> Any:
    """How many open, unexpired tasks of :sid hold each of :ids (gold items excluded), as a derived table.

    Why a join computed once and not a count per image: PostgreSQL plans a correlated count from the
    open tasks (`status = 'open'`, which its statistics, taken between campaigns, think rare), and so
    read every open task of the synset once per image: 2.1 ms for 80 images under load, against 0.5 ms.
    """
    return (
        select(_TI.candidate_id.label("cid"), func.count().label("n"))
        .join(_T, _T.id == _TI.task_id)
        .where(
            _T.synset_id == bindparam("sid"),
            _T.status == "open",
            _T.expires_at > bindparam("now"),
            _TI.is_gold.is_(False),
            ids_in(_TI.candidate_id, dialect),
        )
        .group_by(_TI.candidate_id)
        .subquery("held")
    )


_MINE = exists().where(_V.worker_id == bindparam("wid"), _V.candidate_id == _CI.candidate_id)


def _with_held(dialect: str, *columns: Any) -> Any:
    """`columns` of the crowd_images rows of :ids, with their `held` count and whether :wid voted (`mine`)."""
    held = _held(dialect)
    return (
        select(*columns, func.coalesce(held.c.n, 0).label("held"), _MINE.label("mine"))
        .outerjoin(held, held.c.cid == _CI.candidate_id)
        .where(ids_in(_CI.candidate_id, dialect))
    )


# What `_verify` re-reads of each chosen image under the lock, in one statement (one snapshot; inside the
# write gate every round trip counts): its tallies, the open tasks holding it, whether the worker voted.
_FRESH = PerDialect(lambda d: _with_held(d, *ROW_COLUMNS))
_C = schema.Candidate
_DECISIONS = PerDialect(lambda d: select(_C.id, _C.decision).where(ids_in(_C.id, d)))
# PostgreSQL: claim the images no concurrent assignment holds, and read their decisions. A claim is an
# advisory lock (ASSIGN_LOCKS, candidate id), released when the transaction ends (after its commit is
# visible), taken with the "try" form: no waiting, the images held by others are left out. Not a row lock
# (`FOR NO KEY UPDATE SKIP LOCKED` before): a submit re-deciding an image updates its candidate row, and
# with the row locked by another process's assignment it waited, holding its synset's lock and its
# process's write gate (8% of a loaded server's time); assignments also skipped every image a submit or a
# table rebuild was writing. The claims are taken on the listed ids alone (MATERIALIZED), never on a scan.
ASSIGN_LOCKS = 0x5346  # the advisory-lock space of assignments: keys (ASSIGN_LOCKS, candidate id)
_CLAIM = text(
    "WITH claimed AS MATERIALIZED (SELECT x.id FROM unnest(CAST(:ids AS BIGINT[])) AS x(id) "
    f"WHERE pg_try_advisory_xact_lock({ASSIGN_LOCKS}, CAST(x.id AS INTEGER))) "
    "SELECT c.id, c.decision FROM claimed JOIN candidates c ON c.id = claimed.id"
)


# What ranking asks of the images it read: the open tasks holding each, and whether the worker voted on it
_TAKEN = PerDialect(lambda d: _with_held(d, _CI.candidate_id))


def taken(
    session: Session, now: datetime, synset_id: str, worker_id: int, ids: list[int]
) -> tuple[dict[int, int], set[int]]:
    """For these images of the synset: how many open, unexpired tasks hold each (gold items excluded), and
    which ones the worker voted on; one statement for both."""
    conn = session.connection()
    held: dict[int, int] = {}
    mine: set[int] = set()
    for i in range(0, len(ids), 900):
        args = {"sid": synset_id, "now": now, "wid": worker_id, "ids": ids[i : i + 900]}
        for cid, n, voted in conn.execute(_TAKEN.of(conn), args):
            held[int(cid)] = int(n)
            if voted:
                mine.add(int(cid))
    return held, mine


def voted_by(session: Session, worker_id: int, ids: list[int]) -> set[int]:
    """Which of `ids` the worker has voted on (the unique (candidate, worker) index answers it)."""
    conn = session.connection()
    out: set[int] = set()
    for i in range(0, len(ids), 900):
        out.update(
            int(x)
            for x in conn.execute(_VOTED.of(conn), {"wid": worker_id, "ids": ids[i : i + 900]}).scalars()
        )
    return out


@dataclass
class _Choice:
    synset: SynsetInfo
    state: SynsetState
    ranked: list[int]  # assignable candidates, best first


def _fetch(session: Session, where: Any, order: Any, limit: int) -> list[Any]:
    return list(session.execute(select(*ROW_COLUMNS).where(where).order_by(*order).limit(limit)))


CELL_SLOTS = 16  # table cells read by one statement (`_fetch_cells`)


def _cell_slot(i: int) -> Any:
    """Slot i of `_CELLS_SQLITE`: up to :n open images of cell :c{i}, in hash order from :start, wrapping
    around (the images before :start are read only when those after it run short)."""
    where = (_CI.synset_id == bindparam("sid")) & (_CI.cell == bindparam(f"c{i}"))
    part = [
        select(*ROW_COLUMNS, _CI.cell)
        .where(where & bound)
        .order_by(_CI.hash)
        .limit(bindparam("n"))
        .subquery()
        for bound in (_CI.hash >= bindparam("start"), _CI.hash < bindparam("start"))
    ]
    both = union_all(select(*part[0].c), select(*part[1].c)).subquery()
    return select(*both.c).limit(bindparam("n")).subquery()


# One statement for up to CELL_SLOTS cells, in the order given, at most :n rows in all: what a loop of one
# query per cell (two, wrapping around) did, in one round trip. Both backends read a UNION ALL's members,
# and a nested loop's outer rows, in order and stop once the outer LIMIT is met, so the cells after those
# that gave enough images are never read.
# SQLite: a UNION ALL of CELL_SLOTS slots (unused slots name cell -1, which holds nothing).
_CELLS_SQLITE = (
    union_all(*(select(*slot.c) for slot in (_cell_slot(i) for i in range(CELL_SLOTS))))
    .subquery()
    .select()
    .limit(bindparam("n"))
)
# PostgreSQL: the cells as an array, each read by a LATERAL subquery (planning the UNION ALL's 32 members
# took about 5 ms, more than running it).
_ROW_NAMES = ", ".join(f"ci.{col.name}" for col in (*ROW_COLUMNS, _CI.cell))
_CELL_PART = (
    f"SELECT {_ROW_NAMES} FROM crowd_images AS ci WHERE ci.synset_id = :sid AND ci.cell = c.cell "
    "AND ci.hash {} :start ORDER BY ci.hash LIMIT :n"
)
_CELLS_PG = text(
    "SELECT r.* FROM unnest(CAST(:cells AS INTEGER[])) AS c(cell) CROSS JOIN LATERAL "
    f"(({_CELL_PART.format('>=')}) UNION ALL ({_CELL_PART.format('<')}) LIMIT :n) AS r LIMIT :n"
)


def _fetch_cells(session: Session, synset_id: str, cells: list[int], start: float, n: int) -> list[Any]:
    """Up to n open images of `cells` (at most CELL_SLOTS), a cell's from `start` in hash order wrapping
    around, cell after cell in the order given; each row has its `cell`."""
    assert len(cells) <= CELL_SLOTS
    conn = session.connection()
    args: dict[str, Any] = {"sid": synset_id, "start": start, "n": n}
    if conn.dialect.name == "postgresql":
        return list(conn.execute(_CELLS_PG, {**args, "cells": cells}))
    slots = {f"c{i}": (cells[i] if i < len(cells) else -1) for i in range(CELL_SLOTS)}
    return list(conn.execute(_CELLS_SQLITE, {**args, **slots}))


def _filled_cells(session: Session, synset_id: str, tables: StoredTables) -> set[int]:
    """The table cells that hold at least one open image of the synset, by a skip scan of the index on
    (synset, cell, hash): one index seek per filled cell, however many images each holds. Most of a
    table's ~200 cells are empty, and probing each of them cost two queries per next-task. A server
    remembers the answer for a moment (`StoredTables.filled`)."""
    cached = tables.filled(synset_id)
    if cached is not None:
        return cached
    found = _scan_cells(session, synset_id)
    tables.remember_filled(synset_id, found)
    return found


def _skip_scan() -> Any:
    """The synset's open cells by a recursive query: each step seeks the smallest cell above the last
    (a loose index scan, which neither backend plans by itself), all in one round trip."""
    first = select(func.min(_CI.cell).label("cell")).where(_CI.synset_id == bindparam("sid"), _CI.cell > -1)
    cells = first.cte("open_cells", recursive=True)
    above = select(func.min(_CI.cell)).where(_CI.synset_id == bindparam("sid"), _CI.cell > cells.c.cell)
    cells = cells.union_all(select(above.scalar_subquery()).where(cells.c.cell.is_not(None)))
    return select(cells.c.cell).where(cells.c.cell.is_not(None))


_OPEN_CELLS = _skip_scan()


def _scan_cells(session: Session, synset_id: str) -> set[int]:
    return {int(c) for c in session.connection().execute(_OPEN_CELLS, {"sid": synset_id}).scalars()}


def _rank(
    session: Session,
    syn: SynsetInfo,
    settings: CrowdSettings,
    tables: StoredTables,
    worker_id: int,
    now: datetime,
    want: int,
    rng: random.Random,
) -> _Choice:
    """Up to about 2 * `want` candidates of the synset that need a vote and that this worker may take.

    Every query is an index range bounded by the grid: the initial images (at most `initial_max`), then
    the open images of the table's cells, most expected votes first, each cell read from a random point
    of the hash order (so parallel workers start at different images instead of queueing on the same
    first ones).
    """
    ci = schema.CrowdImage
    table = tables.get(syn, session) if syn.expected_votes is not None else None
    stats: dict[int, ImageStats] = {}
    initial: set[int] = set()
    order: list[tuple[tuple[int, float, int], int]] = []
    target = max(2 * want, want + 4)

    def add(rows: list[Any]) -> list[int]:
        fresh = []
        for r in rows:
            cid = int(r.candidate_id)
            if cid in stats:
                continue
            stats[cid] = stats_of(r)
            if r.initial:
                initial.add(cid)
            fresh.append(cid)
        return fresh

    def keep(ids: list[int], state: SynsetState) -> None:
        """Rank those of `ids` that still want a vote this worker may give (one query for the lot)."""
        if not ids:
            return
        held, mine = taken(session, now, syn.synset_id, worker_id, ids)
        for cid in ids:
            if cid in mine or state.wanted(cid) - held.get(cid, 0) <= 0:
                continue
            order.append((state.priority(cid), cid))

    prior = 0.5
    if settings.method == "worker-aware":  # worker-aware (C2)
        from synsetforge.crowd import worker_aware

        prior = worker_aware.prior_of(session, syn.synset_id, settings)

    def state_now() -> SynsetState:
        return SynsetState(syn.synset_id, settings, stats, frozenset(initial), table, prior_good=prior)

    if settings.method == "worker-aware":  # worker-aware (C2): most uncertain open images + a random slice
        if not worker_aware.takes_tasks(session, worker_id, syn.synset_id, settings):
            return _Choice(syn, state_now(), [])
        open_ = (ci.synset_id == syn.synset_id) & ci.cell.is_not(None)
        keep(add(_fetch(session, open_, (ci.cell, ci.hash), target * 2)), state_now())
        start = rng.random()
        rows = _fetch(session, open_ & (ci.hash >= start), (ci.hash,), target * 2)
        if len(rows) < target * 2:
            rows += _fetch(session, open_ & (ci.hash < start), (ci.hash,), target * 2 - len(rows))
        keep(add(rows), state_now())
        order.sort()
        return _Choice(syn, state_now(), [cid for _, cid in order])

    if settings.method == "imagenet":
        # initial images short of their full-weight votes first (the whole subset, at most `initial_max`
        # or its 5%, while it is collecting; afterwards only those whose votes a block took away): an
        # index range on (synset, initial, n_full)
        short = (ci.synset_id == syn.synset_id) & ci.initial.is_(True) & (ci.n_full < settings.initial_votes)
        if initial_complete(syn):
            short = short & ci.cell.is_not(None)
        # no ORDER BY: ordered by id, SQLite preferred reading the synset's whole (synset, id) index
        initial_rows = add(_fetch(session, short, (), 10_000))
    else:
        initial_rows = []
    cells = (
        tables.cells(syn, session)
        if settings.method == "imagenet"
        else sorted(
            ((y, n) for y in range(settings.fixed_votes + 1) for n in range(settings.fixed_votes + 1 - y)),
            key=lambda c: (-(c[0] + c[1]), c),
        )
    )
    start = rng.random()
    skipped = False
    filled = _filled_cells(session, syn.synset_id, tables) if cells else set()
    todo = []  # the cells to read, in assignment order
    for y, n in cells:
        if y * CELL + n not in filled:
            continue
        if tables.empty(syn.synset_id, y * CELL + n):
            skipped = True
            continue
        todo.append(y * CELL + n)
    pending = initial_rows  # read, not yet filtered: filtered in lots (one query per lot, not per cell)
    while True:
        if len(order) + len(pending) // 2 >= target:
            keep(pending, state_now())
            pending = []
            if len(order) >= target:
                break
        if not todo:
            break
        # about twice what is still wanted (half the images read are usually the worker's own or taken)
        limit = 2 * (target - len(order) - len(pending) // 2)
        batch, todo = todo[:CELL_SLOTS], todo[CELL_SLOTS:]
        rows = _fetch_cells(session, syn.synset_id, batch, start, limit)
        # the limit stopped the read in the last cell that gave rows: the rest of the batch is unread
        read = batch if len(rows) < limit else batch[: batch.index(int(rows[-1].cell)) + 1]
        todo = batch[len(read) :] + todo
        got = {int(r.cell) for r in rows}
        for cell in read:
            if cell not in got:
                tables.mark_empty(syn.synset_id, cell)
        pending += add(rows)
    keep(pending, state_now())
    if skipped and len(order) < max(1, want // 2):
        tables.forget_empty(syn.synset_id)  # too little found: the skipped cells may have filled since
        return _rank(session, syn, settings, tables, worker_id, now, want, rng)
    order.sort()
    return _Choice(syn, state_now(), [cid for _, cid in order])


def _pick_gold(
    session: Session,
    worker_id: int,
    synset_id: str,
    n: int,
    rng: random.Random,
    tables: StoredTables | None = None,
) -> list[int]:
    """Up to n gold items of the synset the worker has not answered, alternating positives and negatives."""
    if n <= 0:
        return []
    every = gold_by_synset(session, tables).get(synset_id, [])
    answered = voted_by(session, worker_id, [cid for cid, _ in every])
    rows = [(cid, ans) for cid, ans in every if cid not in answered]
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


def gold_by_synset(session: Session, tables: StoredTables | None = None) -> dict[str, list[tuple[int, bool]]]:
    """Every synset's gold images with their answers, by id; a server remembers them for a while
    (`StoredTables.gold`). Read from `gold` outwards, once for all synsets: per synset, the database
    read every candidate of the synset to find its few gold ones."""
    cached = tables.gold() if tables is not None else None
    if cached is not None:
        return cached
    g, c = schema.Gold, schema.Candidate
    synset = (
        select(c.synset_id).where(c.id == g.candidate_id, c.image_id.is_not(None)).scalar_subquery()
    )  # a primary-key lookup per gold row, whatever the planner knows of the tables' sizes
    out: dict[str, list[tuple[int, bool]]] = {}
    for sid, cid, ans in session.execute(select(synset, g.candidate_id, g.answer).order_by(g.candidate_id)):
        if sid is not None:
            out.setdefault(str(sid), []).append((int(cid), bool(ans)))
    if tables is not None:
        tables.remember_gold(out)
    return out


def _verify(
    session: Session, best: _Choice, want: int, now: datetime, postgres: bool, worker_id: int
) -> list[int]:
    """Up to `want` candidates, best first, that still need a vote *now*, re-read in this transaction.

    The ranking comes from a read snapshot taken before the locks, so every candidate handed out is
    checked fresh: its decision, its tallies and the open tasks holding it. On PostgreSQL the images are
    first claimed (`_CLAIM`: no waiting, no conflict with writes to their rows); the checks then run in a
    new statement (READ COMMITTED: it sees every assignment committed before the claim). If everything left
    was claimed by others at that instant, `Contended` is raised: the caller tries again shortly rather than
    tell the worker there is no work. On SQLite the transaction holds the database's write lock, so plain
    reads are exact.

    The whole ranking (about twice the grid, `_rank`) is checked at once. In chunks of twice `want` (44 of
    about 48 images) most tasks also read the last few, two more round trips inside the write gate: 2.15
    lock statements per assignment in the load bench, 1.3 in one chunk (the rest are re-rankings).
    """
    conn = session.connection()
    picked: list[int] = []
    skipped = False
    step = min(max(want * 2, len(best.ranked), 1), 900)
    for start in range(0, len(best.ranked), step):
        pool = best.ranked[start : start + step]
        rows = conn.execute(_CLAIM if postgres else _DECISIONS.of(conn), {"ids": pool}).all()
        skipped = skipped or len(rows) < len(pool)
        open_ = sorted(int(cid) for cid, decision in rows if decision is None)
        # Tallies, open tasks and the worker's votes from one statement, so one snapshot: a
        # submission committing meanwhile is counted once (held, or in the tallies), never twice.
        params = {"ids": open_, "sid": best.synset.synset_id, "now": now, "wid": worker_id}
        fresh = {int(r.candidate_id): r for r in conn.execute(_FRESH.of(conn), params)} if open_ else {}
        held = {cid: int(r.held) for cid, r in fresh.items()}
        mine = {cid for cid, r in fresh.items() if r.mine}
        stats = {cid: stats_of(r) for cid, r in fresh.items()}
        initial = frozenset(cid for cid, r in fresh.items() if r.initial)
        state = SynsetState(
            best.synset.synset_id, best.state.settings, stats, initial, best.state.table,
            prior_good=best.state.prior_good,
        )  # fmt: skip
        picked += [x for x in pool if x in stats and x not in mine and state.wanted(x) - held.get(x, 0) > 0]
        if len(picked) >= want:
            return picked[:want]
    if postgres and skipped and not picked:  # (on SQLite a missing row is a deleted candidate)
        raise Contended(f"every image left in {best.synset.synset_id} is claimed by another assignment")
    return picked


class Contended(Exception):
    """Every image a PostgreSQL assignment could hand out was claimed by concurrent assignments.

    The caller rolls back (which releases this transaction's claims and its process's write gate) and tries
    again after a pause with a fresh ranking (`service.CONTENDED_RETRIES`). Waiting here instead, inside the
    transaction, held both: the other process's assignment then found this one's images taken too and
    slept as well (3.1-3.4 s of every 25 s per process in the load bench, with the CPU idle meanwhile).
    """


def gold_quota(settings: CrowdSettings, gold_answered: int) -> int:
    """Gold images in the worker's next task: `gold_per_task`, more while on probation.

    Until a worker has answered `block_min_gold` gold images the blocking rule cannot judge them, so their
    first task carries the missing gold (up to half the grid): a spammer is caught after one task, before
    their votes shape a synset's confidence table.
    """
    probation = max(settings.block_min_gold - gold_answered, 0)
    return max(settings.gold_per_task, min(probation, settings.grid_size // 2))


@dataclass
class Plan:
    """The outcome of ranking (outside the write lock): the chosen synset and its ranked candidates."""

    choice: _Choice
    n_gold: int
    qualify: bool = False  # a task of gold alone (worker-aware `worker_qualify`)
    # the gold images chosen with the ranking, from the worker's answers then: only a submission of this
    # worker's could change them, and a worker with a task to submit gets that task, not a new one
    gold: tuple[int, ...] = ()


def plan_task(
    session: Session,
    worker_id: int,
    settings: CrowdSettings,
    tables: StoredTables,
    now: datetime,
    rng: random.Random,
    gold_answered: int,
) -> Plan | None:
    """Rank candidates for the worker's next task from a read snapshot (no locks held)."""
    n_gold = gold_quota(settings, gold_answered)
    want = settings.grid_size - n_gold
    enough = max(1, want // 2)
    best: _Choice | None = None
    for syn in synset_board(session, settings, SCAN_SYNSETS):
        choice = _rank(session, syn, settings, tables, worker_id, now, settings.grid_size, rng)
        if best is None or len(choice.ranked) > len(best.ranked):
            best = choice
        if len(choice.ranked) >= enough:
            break
    if best is None or not best.ranked:
        return None
    if settings.method == "worker-aware":
        from synsetforge.crowd import worker_aware

        left = worker_aware.qualification_left(session, worker_id, best.synset.synset_id, settings)
        if left:
            n = min(left, settings.grid_size)
            gold = _pick_gold(session, worker_id, best.synset.synset_id, n, rng, tables)
            return Plan(best, n, qualify=True, gold=tuple(gold))
    gold = _pick_gold(session, worker_id, best.synset.synset_id, n_gold, rng, tables)
    return Plan(best, n_gold, gold=tuple(gold))


@dataclass(frozen=True)
class Assigned:
    """A task just created, with what its view shows (known here: nothing to read back under the lock)."""

    task_id: int
    synset_id: str
    items: tuple[int, ...]  # in display order
    created_at: datetime
    expires_at: datetime


def assign_task(
    session: Session,
    worker_id: int,
    settings: CrowdSettings,
    tables: StoredTables,
    now: datetime | None = None,
    rng: random.Random | None = None,
    plan: Plan | None = None,
) -> Assigned | None:
    """Create the worker's next task (None when nothing needs this worker now).

    The caller has locked the worker (`lock_worker`) in the same transaction and checked that they are
    active and hold no open task. `plan` is a ranking made before the lock (`plan_task`); without one, or
    when its front-runners were taken meanwhile, the ranking is made here.
    """
    now = now or datetime.now(UTC)
    rng = rng or random.Random()
    postgres = session.get_bind().dialect.name == "postgresql"
    worker = session.get(schema.Worker, worker_id)
    gold_answered = worker.gold_total if worker is not None else 0
    picked: list[int] = []
    gold: list[int] = []
    for attempt in range(2):
        if plan is None or attempt == 1:
            plan = plan_task(session, worker_id, settings, tables, now, rng, gold_answered)
            if plan is None:
                return None
        best = plan.choice
        gold = list(plan.gold)
        if plan.qualify and gold:
            picked = []  # a qualification: gold alone (with no gold left to answer, a regular task)
            break
        want = settings.grid_size - len(gold)  # regular images fill in for gold the synset lacks
        picked = _verify(session, best, want, now, postgres, worker_id)
        if len(picked) >= min(max(1, want // 2), len(best.ranked)):
            break
    assert plan is not None
    if not picked and not (plan.qualify and gold):
        return None
    conn = session.connection()  # Core: no ORM object for the task or its items
    expires = now + timedelta(minutes=settings.task_minutes)
    synset_id = plan.choice.synset.synset_id
    items = [(cid, False) for cid in picked] + [(cid, True) for cid in gold]
    rng.shuffle(items)
    task = {"wid": worker_id, "sid": synset_id, "created": now, "expires": expires}
    if postgres:  # the task and its items in one statement (inside the write gate every round trip counts)
        cids, golds = [cid for cid, _ in items], [g for _, g in items]
        args = {**task, "cids": cids, "positions": list(range(len(items))), "golds": golds}
        first = conn.execute(_NEW_TASK_WITH_ITEMS, args).scalars().first()
        assert first is not None  # a task has at least one item here
        task_id = int(first)
    else:
        key = conn.execute(_NEW_TASK, task).inserted_primary_key
        assert key is not None
        task_id = int(key[0])
        _NEW_ITEMS.run(
            conn,
            [
                {"task_id": task_id, "candidate_id": cid, "position": i, "is_gold": is_gold, "box_id": None}
                for i, (cid, is_gold) in enumerate(items)
            ],
        )
    return Assigned(task_id, synset_id, tuple(cid for cid, _ in items), now, expires)


_NEW_TASK = insert(_T).values(
    worker_id=bindparam("wid"),
    synset_id=bindparam("sid"),
    kind="verify",
    status="open",
    created_at=bindparam("created"),
    expires_at=bindparam("expires"),
)
_NEW_ITEMS = BulkInsert(
    table_of(schema.TaskItem), ("task_id", "candidate_id", "position", "is_gold", "box_id")
)
# PostgreSQL: both inserts at once, `_NEW_TASK` as a CTE (the items' foreign key check runs at the end of
# the statement, when the task row is there); the items come in as arrays (`store.idlist`)
_TASK_ROW_ID = _NEW_TASK.returning(_T.id).cte("task")
_ITEM_ARRAYS = unnest_arrays(
    table_of(schema.TaskItem), {"cids": "candidate_id", "positions": "position", "golds": "is_gold"}
)
_NEW_TASK_WITH_ITEMS = (
    insert(table_of(schema.TaskItem))
    .from_select(
        ["task_id", "candidate_id", "position", "is_gold"],
        select(
            _TASK_ROW_ID.c.id, _ITEM_ARRAYS.c.cids, _ITEM_ARRAYS.c.positions, _ITEM_ARRAYS.c.golds
        ).select_from(_TASK_ROW_ID.join(_ITEM_ARRAYS, true())),  # one task row, every item
    )
    .returning(schema.TaskItem.task_id)
)
