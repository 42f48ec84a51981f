"""Incremental consensus state in the database: per-image tallies and per-synset counters (issue 10).

Why: recomputing a synset's state from `votes` on every request made next-task and submit cost grow with
the synset (and the project). Here each playable candidate has a `crowd_images` row (its vote tallies, its
place in the initial-subset order, its table cell while open) and each synset a `crowd_synsets` row (open
images, initial-subset size, vote counts, the current confidence table and the inputs it was built from).
Writers keep them current in the same transaction as the votes: a submit recounts the votes of the images
it touched (a bounded GROUP BY on `votes.candidate_id`), re-decides only those images with the synset's
stored table, and adjusts the counters. Whatever needs the whole synset (a new table, re-deciding every
voted image with it) is a background job (`crowd.refresh`), queued when the table's inputs moved.

Every writer of a synset's decisions first locks its `crowd_synsets` row (PostgreSQL: FOR UPDATE; SQLite:
the transaction already holds the database's write lock), so a submit and a background batch never decide
the same image with different tables at once.

Decisions are the same function of (votes, initial subset, table) as the recompute-from-scratch path in
`crowd.consensus` (`load_state`, which `crowd aggregate` runs): `SynsetState.evaluate` is shared.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Integer, bindparam, case, cast, func, select, update
from sqlalchemy.orm import Session

from synsetforge.crowd.aggregation import ConfidenceTable, Decision
from synsetforge.crowd.consensus import (
    VOTE_SUMS,
    ImageStats,
    SynsetState,
    _log_bucket,
    choose_initial,
    fill_sums,
)
from synsetforge.crowd.record import CONSENSUS_KEYS, RECORD_COLUMNS, remember_record
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import schema
from synsetforge.store.bulk import insert_ignore
from synsetforge.store.idlist import BulkUpdate, PerDialect, Together, ids_in, table_of

CELL = 1000  # cell = yes * CELL + no
EMPTY_TTL_S = 2.0
GOLD_TTL_S = 10.0
REFRESH_KIND = "crowd.refresh"

_TABLE_FIELDS = (
    "threshold",
    "min_votes",
    "max_votes",
    "prior_strength",
    "prior_good",
    "sensitivity",
    "specificity",
    "n_initial",
    "easily_illustrated",
    "reject_threshold",
)
_SETTINGS_KEYS = ("method", "fixed_votes", *CONSENSUS_KEYS, "block_min_gold")


def cell_of(st: ImageStats) -> int:
    yes, no = st.counts
    return yes * CELL + no


def settings_fingerprint(settings: CrowdSettings) -> str:
    """What the stored tables and initial flags depend on: a service with other settings rebuilds them."""
    text = repr([(k, getattr(settings, k)) for k in _SETTINGS_KEYS])
    return hashlib.sha1(text.encode()).hexdigest()


log_bucket = _log_bucket  # each ~20% more votes: a new table (see `consensus._log_bucket`)


# -- tables -----------------------------------------------------------------------------------------


def table_to_json(table: ConfidenceTable) -> dict[str, Any]:
    """The table's inputs (its grid is recomputed from them, bit for bit, on load)."""
    out: dict[str, Any] = {k: getattr(table, k) for k in _TABLE_FIELDS}
    out["synset"] = str(table.synset) if table.synset is not None else None
    out["seen"] = np.asarray(table.seen).tolist()
    out["seen_dtype"] = str(np.asarray(table.seen).dtype)
    out["good"] = np.asarray(table.good, dtype=np.float64).tolist()
    return out


def table_from_json(data: dict[str, Any]) -> ConfidenceTable:
    kwargs = {k: data[k] for k in _TABLE_FIELDS}
    return ConfidenceTable(
        synset=data.get("synset"),
        seen=np.asarray(data["seen"], dtype=np.dtype(data.get("seen_dtype", "int64"))),
        good=np.asarray(data["good"], dtype=np.float64),
        **kwargs,
    )


class StoredTables:
    """Deserialized tables per (synset, version), shared by a process's requests. Thread-safe."""

    def __init__(self, remember_empty: bool = True) -> None:
        self.remember_empty = remember_empty  # off: every cell is probed (deterministic, for simulations)
        self._lock = threading.Lock()
        self._tables: dict[str, tuple[int, ConfidenceTable | None, list[tuple[int, int]]]] = {}
        self._empty: dict[tuple[str, int], float] = {}
        self._filled: dict[str, tuple[float, set[int]]] = {}
        self._gold: tuple[float, dict[str, list[tuple[int, bool]]]] | None = None

    def get(
        self, syn: schema.CrowdSynset | SynsetInfo, session: Session | None = None
    ) -> ConfidenceTable | None:
        """The synset's current table (`session`: where a SynsetInfo's table must be read)."""
        return self._entry(syn, session)[0]

    def empty(self, synset_id: str, cell: int) -> bool:
        """A cell found empty within the last `EMPTY_TTL_S` (ranking skips it: most of a table's open
        cells hold no image, and probing each costs two queries per next-task; a cell that fills up again
        is only ranked a moment late, and `assign._verify` re-checks whatever is handed out)."""
        if not self.remember_empty:
            return False
        with self._lock:
            until = self._empty.get((synset_id, cell))
        return until is not None and until > time.monotonic()

    def forget_empty(self, synset_id: str) -> None:
        with self._lock:
            self._filled.pop(synset_id, None)
            for key in [k for k in self._empty if k[0] == synset_id]:
                del self._empty[key]

    def mark_empty(self, synset_id: str, cell: int) -> None:
        if not self.remember_empty:
            return
        with self._lock:
            if len(self._empty) > 100_000:
                self._empty.clear()
            self._empty[(synset_id, cell)] = time.monotonic() + EMPTY_TTL_S

    def gold(self) -> dict[str, list[tuple[int, bool]]] | None:
        """Every synset's gold (id, answer) pairs, as read within the last `GOLD_TTL_S` (None: read
        them); gold changes by an admin's hand, and a new gold image is used a few seconds late."""
        if not self.remember_empty:
            return None
        with self._lock:
            hit = self._gold
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def remember_gold(self, gold: dict[str, list[tuple[int, bool]]]) -> None:
        if self.remember_empty:
            with self._lock:
                self._gold = (time.monotonic() + GOLD_TTL_S, gold)

    def filled(self, synset_id: str) -> set[int] | None:
        """The synset's cells that held an open image within the last `EMPTY_TTL_S` (None: look again).
        Ranking reads them instead of probing the index every request; a cell that filled since is only
        ranked a moment late, and `assign._verify` re-checks whatever is handed out."""
        if not self.remember_empty:
            return None
        with self._lock:
            hit = self._filled.get(synset_id)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def remember_filled(self, synset_id: str, cells: set[int]) -> None:
        if self.remember_empty:
            with self._lock:
                self._filled[synset_id] = (time.monotonic() + EMPTY_TTL_S, cells)

    def cells(
        self, syn: schema.CrowdSynset | SynsetInfo, session: Session | None = None
    ) -> list[tuple[int, int]]:
        """The table's open cells (yes, no), most expected votes first (assignment order)."""
        return self._entry(syn, session)[1]

    def _entry(
        self, syn: Any, session: Session | None = None
    ) -> tuple[ConfidenceTable | None, list[tuple[int, int]]]:
        if syn.expected_votes is None:
            return None, []
        with self._lock:
            hit = self._tables.get(syn.synset_id)
        if hit is not None and hit[0] == syn.table_version:
            return hit[1], hit[2]
        # parsed once per version and process: a row's deferred column loads here; a ranking copy
        # (SynsetInfo) reads it by version through `session`
        data = None
        if not isinstance(syn, SynsetInfo):
            data = syn.table_data
        elif session is not None:
            cs = schema.CrowdSynset
            data = session.scalar(
                select(cs.table_data).where(
                    cs.synset_id == syn.synset_id, cs.table_version == syn.table_version
                )
            )
        if not data:
            if hit is not None and isinstance(syn, SynsetInfo):
                # the version was replaced since the copy was made: rank with the table held (ranking
                # only; assignment re-checks whatever it hands out)
                return hit[1], hit[2]
            return None, []
        table = table_from_json(data)
        cells = open_cells(table)
        with self._lock:
            if len(self._tables) > 4096:
                self._tables.clear()
            self._tables[syn.synset_id] = (syn.table_version, table, cells)
        return table, cells


def open_cells(table: ConfidenceTable) -> list[tuple[int, int]]:
    size = table.remaining.shape[0]
    cells = [(y, n) for y in range(size) for n in range(size - y) if table.decide(y, n) == Decision.NEED_MORE]
    cells.sort(key=lambda c: (-table.need_score(*c), c))
    return cells


@dataclass(frozen=True)
class SynsetInfo:
    """A read-only copy of a `crowd_synsets` row (for ranking outside a write transaction)."""

    synset_id: str
    n_open: int
    table_version: int
    expected_votes: float | None
    initial_size: int
    initial_done: int

    @classmethod
    def of(cls, row: schema.CrowdSynset) -> SynsetInfo:
        """Without the table's JSON: `StoredTables` reads it by version where it does not hold it."""
        return cls(
            row.synset_id,
            row.n_open,
            row.table_version,
            row.expected_votes,
            row.initial_size,
            row.initial_done,
        )


# -- reading and writing tallies -----------------------------------------------------------------


def _recount_statement(dialect: str) -> Any:
    v = schema.Vote
    return (
        select(v.candidate_id, *VOTE_SUMS)
        .where(ids_in(v.candidate_id, dialect), v.is_gold.is_(False))
        .group_by(v.candidate_id)
    )


# built once (a submit runs it; building it cost more than running it)
_RECOUNT = PerDialect(_recount_statement)


def recount(session: Session, ids: Iterable[int]) -> dict[int, ImageStats]:
    """Exact tallies of these candidates from their non-gold votes (bounded: ids are given)."""
    out = {int(c): ImageStats(int(c), None, None) for c in ids}
    if not out:
        return out
    keys = sorted(out)
    conn = session.connection()
    for start in range(0, len(keys), 900):
        fill_sums(out, conn.execute(_RECOUNT.of(conn), {"ids": keys[start : start + 900]}))
    return out


def stats_of(row: Any) -> ImageStats:
    """ImageStats from a crowd_images row (decision/confidence filled in by the caller; the worker-aware
    evidence when the row has it)."""
    return ImageStats(
        int(row.candidate_id),
        None,
        None,
        int(row.n_full),
        int(row.n_counted),
        int(row.n_all),
        float(row.yes_w),
        float(row.no_w),
        int(row.id_sum),
        float(getattr(row, "llr", 0.0)),
    )


_SYNSET_ROW = (
    select(schema.CrowdSynset, *RECORD_COLUMNS)
    .where(schema.CrowdSynset.synset_id == bindparam("sid"))
    .execution_options(populate_existing=True)
)
_SYNSET_ROW_LOCKED = _SYNSET_ROW.with_for_update()


_ZEROS = dict.fromkeys(
    ("n_playable", "n_open", "n_votes", "n_gold_votes", "base_size", "initial_size", "initial_done",
     "table_version", "table_votes", "table_gold_votes"),
    0,
)  # fmt: skip


def lock_synset(session: Session, synset_id: str) -> schema.CrowdSynset:
    """The synset's counters row, locked for this transaction (created when missing).

    Created with "insert unless there": two server processes starting on a new project both found the
    row missing, and the second insert failed the second process's start-up (uvicorn then stopped all)."""
    q = _SYNSET_ROW if session.get_bind().dialect.name == "sqlite" else _SYNSET_ROW_LOCKED
    found = session.execute(q, {"sid": synset_id}).first()
    if found is None:
        new = {"synset_id": synset_id, "refresh_queued": False, "refreshing": False, **_ZEROS}
        insert_ignore(session, schema.CrowdSynset.__table__, [new], ["synset_id"])  # type: ignore[arg-type]
        found = session.execute(q, {"sid": synset_id}).one()
    row, method, params = found
    remember_record(session, method, params)  # the decision record, read with the row (`record_live`)
    return row


def fingerprint_initial(stats: Iterable[ImageStats]) -> str:
    key = repr(sorted((st.candidate_id, st.n_full, st.id_sum) for st in stats))
    return hashlib.sha1(key.encode()).hexdigest()


def recompute_initial(session: Session, syn: schema.CrowdSynset, settings: CrowdSettings) -> set[int]:
    """Re-choose the synset's initial subset from the first images in hash order (bounded by
    `initial_max`); set the flags, size, done count and fingerprint. Returns ids whose membership changed."""
    if settings.method != "imagenet":
        return set()
    ci = schema.CrowdImage
    limit = min(syn.n_playable, max(settings.initial_max, syn.base_size)) if syn.n_playable else 0
    if limit <= 0:
        limit = max(settings.initial_max, settings.initial_min)
    rows = session.execute(
        select(ci).where(ci.synset_id == syn.synset_id).order_by(ci.hash, ci.candidate_id).limit(limit)
    ).scalars()
    prefix = list(rows)
    stats = {r.candidate_id: stats_of(r) for r in prefix}
    chosen = choose_initial(stats, settings, [r.candidate_id for r in prefix]) if stats else frozenset()
    flagged = {
        int(c)
        for c in session.scalars(select(ci.candidate_id).where(ci.synset_id == syn.synset_id, ci.initial))
    }
    changed = flagged ^ set(chosen)
    if changed:
        session.execute(update(ci).where(ci.candidate_id.in_(sorted(chosen - flagged))).values(initial=True))
        session.execute(update(ci).where(ci.candidate_id.in_(sorted(flagged - chosen))).values(initial=False))
    syn.initial_size = len(chosen)
    syn.initial_done = sum(stats[c].n_all >= settings.initial_votes for c in chosen)
    syn.fp_initial = fingerprint_initial(stats[c] for c in chosen)
    return changed


def initial_complete(syn: schema.CrowdSynset | SynsetInfo) -> bool:
    return syn.initial_size > 0 and syn.initial_done >= syn.initial_size


def needs_rebuild(
    syn: schema.CrowdSynset, settings: CrowdSettings, settings_fp: str, table: ConfidenceTable | None = None
) -> bool:
    """The table's inputs moved enough to rebuild it now (a background job; see `consensus`). `table`: the
    synset's current table where the caller holds it parsed (else its stored form is read when needed).

    Now: other settings, the initial subset completed (or lost an image's votes to a block), its
    membership changed, or the synset's votes (gold votes under gold calibration) grew by about 20% since
    the table. Not now: more votes on initial images that stay open (each moves the table a little, as
    their posteriors feed it). Rebuilding on each of those re-decided a whole synset for about every
    third submit; they are picked up by the next such rebuild, and a synset that goes quiet is settled
    exactly (`is_stale`), so settled decisions still equal a recompute from scratch.
    """
    if settings.method != "imagenet":
        return syn.settings_fp != settings_fp
    if syn.settings_fp != settings_fp:
        return True
    has = syn.expected_votes is not None
    if initial_complete(syn) != has:
        return True
    if not has:
        return False
    if syn.fp_initial != syn.table_fp_initial and _table_initial_size(syn, table) != syn.initial_size:
        return True
    if settings.calibration == "gold":
        return log_bucket(syn.n_gold_votes) != log_bucket(syn.table_gold_votes)
    return log_bucket(syn.n_votes) != log_bucket(syn.table_votes) and (
        settings.calibration == "votes" or syn.fp_initial != syn.table_fp_initial
    )


def _table_initial_size(syn: schema.CrowdSynset, table: ConfidenceTable | None = None) -> int | None:
    """The size of the initial subset the table was built from. From `table` where given: the stored form
    is a deferred column, and reading it (a round trip and a JSON parse inside the synset's lock) cost
    every second submit, as votes on open initial images move `fp_initial`."""
    if table is not None:
        return int(table.n_initial)
    data = syn.table_data
    return int(data["n_initial"]) if isinstance(data, dict) and data.get("n_initial") is not None else None


def is_stale(syn: schema.CrowdSynset, settings: CrowdSettings, settings_fp: str) -> bool:
    """The table is not exactly what a recompute from scratch would build now (settled when quiet)."""
    if needs_rebuild(syn, settings, settings_fp):
        return True
    if settings.method != "imagenet" or syn.expected_votes is None:
        return False
    if syn.fp_initial != syn.table_fp_initial:
        return True
    if settings.calibration == "initial":
        return False
    return syn.n_votes != syn.table_votes or syn.n_gold_votes != syn.table_gold_votes


TALLY_COLUMNS = (  # an image's kept tallies, in `ImageStats` order
    schema.CrowdImage.n_full,
    schema.CrowdImage.n_counted,
    schema.CrowdImage.n_all,
    schema.CrowdImage.yes_w,
    schema.CrowdImage.no_w,
    schema.CrowdImage.id_sum,
    schema.CrowdImage.llr,
)
# an image's live row as ranking and re-deciding read it: id, initial flag, kept tallies
ROW_COLUMNS = (schema.CrowdImage.candidate_id, schema.CrowdImage.initial, *TALLY_COLUMNS)
ROWS_OF = PerDialect(lambda d: select(*ROW_COLUMNS).where(ids_in(schema.CrowdImage.candidate_id, d)))


def _decide_rows_statement(dialect: str) -> Any:
    return (
        select(
            schema.CrowdImage.candidate_id,
            schema.CrowdImage.initial,
            schema.CrowdImage.cell,
            schema.Candidate.decision,
            schema.Candidate.confidence,
            *TALLY_COLUMNS,
        )
        .join(schema.Candidate, schema.Candidate.id == schema.CrowdImage.candidate_id)
        .where(ids_in(schema.CrowdImage.candidate_id, dialect))
    )


_DECIDE_ROWS = PerDialect(_decide_rows_statement)


def _recount_rows_statement(dialect: str) -> Any:
    sums = _recount_statement(dialect).subquery("sums")
    return (
        _decide_rows_statement(dialect)
        .add_columns(*list(sums.c)[1:])
        .outerjoin(sums, sums.c.candidate_id == schema.CrowdImage.candidate_id)
    )


# what `decide_rows` reads of the images, with their recount (one round trip, not two, inside the gate)
_RECOUNT_ROWS = PerDialect(_recount_rows_statement)
_N_ROW = 5 + len(TALLY_COLUMNS)  # the columns of a `_DECIDE_ROWS` row


def recount_rows(session: Session, ids: Iterable[int]) -> tuple[dict[int, ImageStats], dict[int, Any]]:
    """`recount(ids)`, and the live rows `decide_rows` reads, from one statement; images without a live row
    are recounted on their own."""
    out = {int(c): ImageStats(int(c), None, None) for c in ids}
    rows: dict[int, Any] = {}
    keys = sorted(out)
    conn = session.connection()
    sums = []
    for start in range(0, len(keys), 900):
        for row in conn.execute(_RECOUNT_ROWS.of(conn), {"ids": keys[start : start + 900]}):
            rows[int(row[0])] = row[:_N_ROW]
            sums.append((row[0], *row[_N_ROW:]))
    fill_sums(out, sums)
    missing = [k for k in keys if k not in rows]
    if missing:
        out.update(recount(session, missing))
    return out, rows


def decide_rows(
    session: Session,
    syn: schema.CrowdSynset,
    settings: CrowdSettings,
    table: ConfidenceTable | None,
    fresh: dict[int, ImageStats],
    initial_flags: dict[int, bool] | None = None,
    rows: dict[int, Any] | None = None,
) -> tuple[int, int]:
    """`decided` written: (decisions changed, change in open images)."""
    out = decided(session, syn, settings, table, fresh, initial_flags, rows)
    _WRITE_ROWS.run(session.connection(), out.tallies, out.decisions)
    return out.changed, out.opened


@dataclass
class Decided:
    """What re-deciding some images changes: counts, and the rows to write (`_WRITE_ROWS`)."""

    changed: int = 0
    opened: int = 0
    tallies: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)


def decided(
    session: Session,
    syn: schema.CrowdSynset,
    settings: CrowdSettings,
    table: ConfidenceTable | None,
    fresh: dict[int, ImageStats],
    initial_flags: dict[int, bool] | None = None,
    rows: dict[int, Any] | None = None,
) -> Decided:
    """Fresh tallies of these images and their decisions under `table`, to be written by the caller (rows
    that would not change are left out). Writers of a synset's rows hold its `crowd_synsets` row
    (`lock_synset`), so two never update the same images at once (no deadlocks, whatever order a statement
    updates rows in). Images without a live row are skipped; `initial_flags`, when given, gets each found
    image's initial flag;
    `rows`: the images' live rows as `recount_rows` read them (else they are read here)."""
    if not fresh:
        return Decided()
    ids = sorted(fresh)
    current: dict[int, tuple[bool, int | None]] = {}
    stored: dict[
        int, tuple[Any, ...]
    ] = {}  # what the row holds now: rows that would not change are not written
    conn = session.connection()
    if rows is not None:
        found: Iterable[Any] = [rows[k] for k in ids if k in rows]
    else:
        found = (
            row
            for start in range(0, len(ids), 900)
            for row in conn.execute(_DECIDE_ROWS.of(conn), {"ids": ids[start : start + 900]})
        )
    for row in found:
        cid, initial, cell, decision, confidence = row[:5]
        st = fresh[int(cid)]
        st.decision, st.confidence = decision, confidence
        current[int(cid)] = (bool(initial), cell)
        stored[int(cid)] = (*row[5:], cell)
    members = frozenset(cid for cid, (flag, _) in current.items() if flag)
    if initial_flags is not None:
        initial_flags.update((cid, flag) for cid, (flag, _) in current.items())
    state = SynsetState(syn.synset_id, settings, {k: fresh[k] for k in current}, members, table)
    if settings.method == "worker-aware":  # worker-aware (C2): evidence under the current worker models
        from synsetforge.crowd import worker_aware

        state.prior_good = worker_aware.prior_of(session, syn.synset_id, settings)
        for cid, (llr, _n) in worker_aware.image_evidence(session, current, settings).items():
            fresh[cid].llr = llr
    changed = opened = 0
    tallies: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    at = now_utc()
    for cid in sorted(current):
        st = fresh[cid]
        decision, confidence = state.evaluate(cid)
        cell = cell_of(st) if decision is None else None
        if cell is not None and settings.method == "worker-aware":  # worker-aware (C2): uncertainty bucket
            from synsetforge.crowd import worker_aware

            cell = worker_aware.cell(st.llr, state.prior_good, settings)
        now = (st.n_full, st.n_counted, st.n_all, st.yes_w, st.no_w, st.id_sum, st.llr, cell)
        if now != stored[cid]:
            tallies.append(
                {
                    "_id": cid,
                    "n_full": st.n_full,
                    "n_counted": st.n_counted,
                    "n_all": st.n_all,
                    "yes_w": st.yes_w,
                    "no_w": st.no_w,
                    "id_sum": st.id_sum,
                    "llr": st.llr,  # worker-aware (C2)
                    "cell": cell,
                }
            )
        same_conf = (confidence is None and st.confidence is None) or (
            confidence is not None and st.confidence is not None and abs(confidence - st.confidence) < 1e-9
        )
        if decision != st.decision or not same_conf:
            decisions.append({"_id": cid, "_decision": decision, "_confidence": confidence, "_at": at})
            changed += 1
        was_open = current[cid][1] is not None
        opened += int(decision is None) - int(was_open)
    return Decided(changed, opened, tallies, decisions)


_IMAGES, _CANDIDATES = table_of(schema.CrowdImage), table_of(schema.Candidate)
_WRITE_TALLIES = BulkUpdate(  # one statement per call on PostgreSQL (`store.idlist`)
    _IMAGES,
    ("_id", "candidate_id"),
    {k: k for k in ("n_full", "n_counted", "n_all", "yes_w", "no_w", "id_sum", "llr", "cell")},
)
_WRITE_DECISIONS = BulkUpdate(  # updated_at given: a Python-side onupdate is not run inside a CTE
    _CANDIDATES, ("_id", "id"), {"_decision": "decision", "_confidence": "confidence", "_at": "updated_at"}
)
_WRITE_ROWS = Together(_WRITE_TALLIES, _WRITE_DECISIONS)  # PostgreSQL: one round trip for both
COUNTER_PARAMS = {
    "n_votes": "_votes",
    "n_gold_votes": "_gold_votes",
    "n_open": "_open",
    "last_vote_at": "_at",
}
_WRITE_COUNTERS = BulkUpdate(
    table_of(schema.CrowdSynset), ("_sid", "synset_id"), {p: column for column, p in COUNTER_PARAMS.items()}
)
# a submit's writes under the synset lock, its counters included: one round trip on PostgreSQL
WRITE_ROWS_AND_COUNTERS = Together(_WRITE_TALLIES, _WRITE_DECISIONS, _WRITE_COUNTERS)


def now_utc() -> datetime:
    return datetime.now(UTC)


def count_votes(session: Session, synset_id: str) -> tuple[int, int]:
    """(votes that count, full-weight gold votes) on the synset's images, gold images included."""
    c, v = schema.Candidate, schema.Vote
    row = session.execute(
        select(
            func.count(),
            func.sum(case(((v.is_gold.is_(True)) & (v.weight >= 1.0), 1), else_=0)),
        )
        .select_from(v)
        .join(c, c.id == v.candidate_id)
        .where(c.synset_id == synset_id, v.weight > 0)
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


def resync_open(session: Session) -> None:
    """After decisions were written wholesale (`crowd aggregate --write`): every image's `cell` and every
    synset's open count follow `candidates.decision` again (one pass over the project, like the write)."""
    c, ci, cs = schema.Candidate, schema.CrowdImage, schema.CrowdSynset
    decided = select(c.id).where(c.id == ci.candidate_id, c.decision.is_not(None)).exists()
    session.execute(update(ci).where(decided).values(cell=None).execution_options(synchronize_session=False))
    # tallies are >= 0, so truncating x + 0.5 rounds like `ImageStats.counts`
    rounded = cast(ci.yes_w + 0.5, Integer) * CELL + cast(ci.no_w + 0.5, Integer)
    session.execute(
        update(ci).where(~decided).values(cell=rounded).execution_options(synchronize_session=False)
    )
    counts = dict(
        session.execute(
            select(ci.synset_id, func.count()).where(ci.cell.is_not(None)).group_by(ci.synset_id)
        ).all()
    )
    for row in session.scalars(select(cs)):
        row.n_open = int(counts.get(row.synset_id, 0))
    session.flush()


def refresh_planner_statistics(project: Any) -> None:
    """After bulk changes (start-up sync, `refresh`): planner statistics for the hot tables, so the
    indexes above are used (PostgreSQL: ANALYZE; SQLite: PRAGMA optimize, which analyzes what needs it)."""
    with project.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            for table in ("candidates", "votes", "crowd_images", "crowd_synsets", "task_items", "tasks"):
                conn.exec_driver_sql(f"ANALYZE {table}")
        else:
            conn.exec_driver_sql("PRAGMA optimize")
        conn.commit()
