"""The live consensus, incrementally: what a submit does to its images, and the background rebuild job.

A submit (`touch`) recounts the votes of the images it touched, re-decides them with the synset's stored
table, re-chooses the initial subset when one of its images moved, and adjusts the counters; when the
table's inputs moved (see `tallies.needs_rebuild`) it queues one `crowd.refresh` job for the synset
(debounced: at most one queued per synset) in the same transaction. The job (`rebuild`) runs in the
existing job queue (`benchmark.queue`, lease-based, so a killed runner's job is claimed again): it syncs the
synset's rows with its playable candidates, builds the table from a read snapshot, publishes it (version
+1, `refreshing` set), then re-decides every image of the synset in batches of `batch` rows, each a short
transaction that locks the synset's counters row and stops if a newer table was published meanwhile.
Batches are idempotent (tallies are recounted from votes), so a job killed half-way and run again leaves
the same decisions as a run that never stopped.

Between a table's publication and its last batch a synset's decisions mix two tables; `crowd_synsets.
refreshing` says so (the dashboard shows it). Once no votes come and every job ran, decisions equal the
recompute-from-scratch result (`consensus.load_state`, `crowd aggregate`): a synset whose table is not
exactly current (`tallies.is_stale`: votes since the table, below the 20% rebuild step) is rebuilt once it
has been quiet for `quiet_s` (`settle`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from synsetforge.benchmark import queue
from synsetforge.crowd.consensus import ImageStats, build_table, gold_counts, playable, unit_hash
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.crowd.tallies import (
    COUNTER_PARAMS,
    REFRESH_KIND,
    ROWS_OF,
    WRITE_ROWS_AND_COUNTERS,
    StoredTables,
    count_votes,
    decide_rows,
    decided,
    initial_complete,
    is_stale,
    lock_synset,
    needs_rebuild,
    now_utc,
    recompute_initial,
    recount,
    recount_rows,
    settings_fingerprint,
    stats_of,
    table_to_json,
)
from synsetforge.store import schema
from synsetforge.store.idlist import BulkInsert, table_of
from synsetforge.store.project import Project

log = logging.getLogger(__name__)

BATCH = 500
LEASE = timedelta(seconds=60)
Writer = Callable[[], contextlib.AbstractContextManager[Session]]


def touch(
    session: Session,
    synset_id: str,
    ids: Iterable[int],
    settings: CrowdSettings,
    tables: StoredTables,
    *,
    votes_added: tuple[int, int] | None = None,
) -> int:
    """Recount and re-decide `ids` (the synset's images that got votes or new weights); returns how many
    decisions changed. `votes_added` = (counted votes, full-weight gold votes) the caller inserted; None
    recounts the synset's vote counters (blocks, imports). Queues a rebuild when the table's inputs moved."""
    syn = lock_synset(session, synset_id)
    fresh, rows = recount_rows(session, ids)
    fp = settings_fingerprint(settings)
    table = tables.get(syn) if syn.settings_fp == fp else None
    changed = _decide(session, syn, settings, table, fresh, rows, votes_added)
    if needs_rebuild(syn, settings, fp, table):
        request_refresh(session, syn)
    elif settings.method == "worker-aware" and not syn.refresh_queued:  # worker-aware (C2): refit due?
        from synsetforge.crowd import worker_aware

        if worker_aware.refit_due(session, worker_aware.group_of(synset_id, settings), settings, syn.n_votes):
            request_refresh(session, syn)
    session.flush()
    return changed


def _settled(syn: schema.CrowdSynset, fresh: dict[int, ImageStats], rows: dict[int, Any]) -> bool:
    """The common submit: every image has its live row, none is in the initial subset (a row's second
    column, `tallies._DECIDE_ROWS`), and that subset is complete, so nothing but the images themselves and
    the synset's counters changes."""
    return initial_complete(syn) and all(k in rows and not rows[k][1] for k in fresh)


def _decide(
    session: Session,
    syn: schema.CrowdSynset,
    settings: CrowdSettings,
    table: Any,
    fresh: dict[int, ImageStats],
    rows: dict[int, Any],
    votes_added: tuple[int, int] | None,
) -> int:
    """Re-decide the images (adding live rows the new ones lack, re-choosing the initial subset when one
    of its images moved) and adjust the synset's counters; returns how many decisions changed.

    A `_settled` submit writes the images' rows and the synset's counters in one statement (one round trip
    on PostgreSQL, with the synset's row lock held: other processes' submits to the synset wait on it);
    the counters are set on the locked row without making it dirty (no second write)."""
    if votes_added is not None and _settled(syn, fresh, rows):
        out = decided(session, syn, settings, table, fresh, None, rows)
        counters = {
            "n_votes": syn.n_votes + votes_added[0],
            "n_gold_votes": syn.n_gold_votes + votes_added[1],
            "n_open": syn.n_open + out.opened,
            "last_vote_at": now_utc(),
        }
        row = {"_sid": syn.synset_id, **{COUNTER_PARAMS[k]: v for k, v in counters.items()}}
        WRITE_ROWS_AND_COUNTERS.run(session.connection(), out.tallies, out.decisions, [row])
        for key, value in counters.items():
            set_committed_value(syn, key, value)
        return out.changed
    # tallies first, so that re-choosing the initial subset sees them
    known: dict[int, bool] = {}  # the images' initial flags, filled in by decide_rows
    changed, opened = decide_rows(session, syn, settings, table, fresh, known, rows)
    missing = sorted(k for k in fresh if k not in known)
    if missing:  # playable candidates without live rows yet (a new project, imported votes)
        added = _add_rows(session, syn, missing)
        c2, o2 = decide_rows(session, syn, settings, table, {k: fresh[k] for k in added}, known)
        changed, opened = changed + c2, opened + o2
    fresh = {k: st for k, st in fresh.items() if k in known}
    if fresh and (any(known[k] for k in fresh) or not initial_complete(syn)):
        moved = recompute_initial(session, syn, settings)
        if moved:
            c2, o2 = decide_rows(session, syn, settings, table, recount(session, moved))
            changed, opened = changed + c2, opened + o2
    if votes_added is None:
        syn.n_votes, syn.n_gold_votes = count_votes(session, syn.synset_id)
    else:
        syn.n_votes += votes_added[0]
        syn.n_gold_votes += votes_added[1]
    syn.n_open += opened
    syn.last_vote_at = now_utc()
    return changed


def _add_rows(session: Session, syn: schema.CrowdSynset, ids: list[int]) -> list[int]:
    """Live rows (zero tallies) for those of `ids` that are playable candidates of the synset."""
    c = schema.Candidate
    rows = session.execute(select(c.id, c.decision).where(c.id.in_(ids), playable(syn.synset_id))).all()
    if rows:
        session.execute(
            insert(schema.CrowdImage), [_empty_row(syn.synset_id, int(cid), d) for cid, d in rows]
        )
        syn.n_playable += len(rows)
        syn.n_open += sum(d is None for _, d in rows)
    return [int(cid) for cid, _ in rows]


def _empty_row(synset_id: str, cid: int, decision: str | None) -> dict[str, Any]:
    return {
        "candidate_id": cid,
        "synset_id": synset_id,
        "hash": unit_hash(cid),
        "initial": False,
        "n_full": 0,
        "n_counted": 0,
        "n_all": 0,
        "yes_w": 0.0,
        "no_w": 0.0,
        "llr": 0.0,
        "id_sum": 0,
        "cell": 0 if decision is None else None,
    }


def stored(session: Session, ids: list[int]) -> dict[int, ImageStats]:
    """The images' tallies as stored (no recount)."""
    conn = session.connection()
    return {int(r.candidate_id): stats_of(r) for r in conn.execute(ROWS_OF.of(conn), {"ids": ids})}


def request_refresh(session: Session, syn: schema.CrowdSynset, *, sync: bool = False) -> bool:
    """Queue one rebuild job for the synset unless one is queued already (the caller holds its row).
    `sync`: the synset's candidates changed (new ones, gold): the job first syncs its rows with them."""
    if syn.refresh_queued:
        if sync:  # the queued job must sync too
            for job in session.scalars(
                select(schema.Job).where(schema.Job.kind == REFRESH_KIND, schema.Job.status == "queued")
            ):
                if job.payload.get("synset_id") == syn.synset_id and not job.payload.get("sync"):
                    job.payload = {**job.payload, "sync": True}
        return False
    queue.enqueue(session, REFRESH_KIND, {"synset_id": syn.synset_id, "sync": sync})
    syn.refresh_queued = True
    return True


# -- the rebuild job --------------------------------------------------------------------------------


_NEW_ROWS = BulkInsert(table_of(schema.CrowdImage), tuple(_empty_row("", 0, None)))


def _sync_members(write: Writer, project: Project, synset_id: str) -> None:
    """Add rows for playable candidates without one, drop rows of candidates no longer playable."""
    c, ci = schema.Candidate, schema.CrowdImage
    with project.session() as s:
        want = {
            int(cid): decision
            for cid, decision in s.execute(select(c.id, c.decision).where(playable(synset_id)))
        }
        have = {int(x) for x in s.scalars(select(ci.candidate_id).where(ci.synset_id == synset_id))}
    extra = sorted(have - set(want))
    missing = sorted(set(want) - have)
    if not extra and not missing:
        return
    with write() as s:
        lock_synset(s, synset_id)
        for start in range(0, len(extra), 900):
            s.execute(delete(ci).where(ci.candidate_id.in_(extra[start : start + 900])))
        # rows another synset still holds (a candidate moved): one join, not the ids of a bulk load, which
        # passed PostgreSQL's 65,535 parameters at 1M (in chunks of 900, each took PostgreSQL 0.2 s: most
        # likely a prepared plan made while the table was small)
        taken = {
            int(x)
            for x in s.scalars(
                select(ci.candidate_id)
                .join(c, c.id == ci.candidate_id)
                .where(c.synset_id == synset_id, ci.synset_id != synset_id)
            )
        }
        rows = [_empty_row(synset_id, cid, want[cid]) for cid in missing if cid not in taken]
        for start in range(0, len(rows), 2000):
            _NEW_ROWS.run(s.connection(), rows[start : start + 2000])
        # their tallies from votes already stored (a bulk load, an upgrade): like a submit would have made
        added = [r["candidate_id"] for r in rows]
        counted = [st for st in recount(s, added).values() if st.n_all]
        if counted:
            s.execute(
                update(schema.CrowdImage),
                [
                    {"candidate_id": st.candidate_id, "n_full": st.n_full, "n_counted": st.n_counted,
                     "n_all": st.n_all, "yes_w": st.yes_w, "no_w": st.no_w, "id_sum": st.id_sum}
                    for st in counted
                ],
            )  # fmt: skip


def rebuild(
    project: Project,
    synset_id: str,
    settings: CrowdSettings,
    tables: StoredTables,
    write: Writer,
    *,
    batch: int = BATCH,
    on_batch: Callable[[int], None] | None = None,
    heal: bool = False,
    sync: bool = True,
) -> int:
    """Rebuild the synset's table and re-decide all its images (see the module docstring). Returns how
    many decisions changed. `heal`: recount every image's tallies from the votes (`refresh`, after votes
    were loaded outside the service); otherwise the stored tallies of voted or decided images are used."""
    fp = settings_fingerprint(settings)
    with write() as s:
        syn = lock_synset(s, synset_id)
        syn.refresh_queued = False
        syn.refreshing = True
        syn.refresh_started_at = now_utc()
    if sync or heal:
        _sync_members(write, project, synset_id)
    ci = schema.CrowdImage
    # the table, from a read snapshot (no lock held while it is built)
    with write() as s:
        syn = lock_synset(s, synset_id)
        syn.n_playable = int(s.scalar(select(func.count()).where(ci.synset_id == synset_id)) or 0)
        below = int(
            s.scalar(
                select(func.count()).where(ci.synset_id == synset_id, ci.hash < settings.initial_fraction)
            )
            or 0
        )
        syn.base_size = min(syn.n_playable, max(below, settings.initial_min))
        prefix = s.execute(
            select(ci.candidate_id).where(ci.synset_id == synset_id).order_by(ci.hash, ci.candidate_id)
            .limit(max(settings.initial_max, syn.base_size) + settings.initial_min)
        ).scalars().all()  # fmt: skip
        fresh = recount(s, prefix)
        changed, opened = decide_rows(s, syn, settings, tables.get(syn), fresh)
        syn.n_open += opened
        recompute_initial(s, syn, settings)
    table = None
    votes = gold_votes = 0
    fp_initial = None
    with project.session() as s:
        syn_row = s.get(schema.CrowdSynset, synset_id)
        assert syn_row is not None
        # the counters are kept exact by every writer; after a bulk load (`heal`) they are recounted
        votes, gold_votes = count_votes(s, synset_id) if heal else (syn_row.n_votes, syn_row.n_gold_votes)
        fp_initial = syn_row.fp_initial
        if settings.method == "imagenet" and initial_complete(syn_row):
            initial = [
                int(x)
                for x in s.scalars(select(ci.candidate_id).where(ci.synset_id == synset_id, ci.initial))
            ]
            gold = None
            if settings.calibration == "gold":
                gold = gold_counts(s, synset_id, skip_first=settings.block_min_gold)
                if min(gold.pos_votes, gold.neg_votes) < settings.calibration_min_gold:
                    gold = None
            table = build_table(
                s, synset_id, initial, settings, gold, None if heal else kept_counts(s, synset_id)
            )
    if settings.method == "worker-aware":  # worker-aware (C2): refit the worker models, then re-decide all
        from synsetforge.crowd import worker_aware

        with write() as s:
            worker_aware.refit_group(s, worker_aware.group_of(synset_id, settings), settings)
    with write() as s:
        syn = lock_synset(s, synset_id)
        syn.table_version += 1
        version = syn.table_version
        syn.table_data = table_to_json(table) if table is not None else None
        syn.expected_votes = table.expected_votes() if table is not None else None
        syn.table_fp_initial = fp_initial
        syn.table_votes, syn.table_gold_votes = votes, gold_votes
        if heal:
            syn.n_votes, syn.n_gold_votes = count_votes(s, synset_id)
        syn.settings_fp = fp
        syn.refreshing = True
    last = -1
    while True:
        with write() as s:
            syn = lock_synset(s, synset_id)
            if syn.table_version != version:
                return changed  # a newer table was published: its job re-decides everything
            q = select(ci.candidate_id).where(ci.synset_id == synset_id, ci.candidate_id > last)
            if not heal:  # an image without votes that is open stays so under any table
                q = q.where((ci.n_all > 0) | ci.cell.is_(None))
            ids = list(s.scalars(q.order_by(ci.candidate_id).limit(batch)))
            if not ids:
                syn.n_open = int(
                    s.scalar(select(func.count()).where(ci.synset_id == synset_id, ci.cell.is_not(None))) or 0
                )
                syn.refreshing = False
                syn.refreshed_at = now_utc()
                break
            got, opened = decide_rows(
                s, syn, settings, tables.get(syn), recount(s, ids) if heal else stored(s, ids)
            )
            changed += got
            syn.n_open += opened
            last = ids[-1]
        if on_batch is not None:
            on_batch(last)
    if changed:
        from synsetforge.crowd.record import record_live

        with write() as s:
            record_live(s, settings)
    return changed


def kept_counts(session: Session, synset_id: str) -> np.ndarray:
    """`consensus.voted_counts` from the kept tallies (the same sums, in the same order, without reading
    the synset's votes): the weighted (yes, no) of every image with a counted vote, by id."""
    ci = schema.CrowdImage
    rows = session.execute(
        select(ci.yes_w, ci.no_w).where(ci.synset_id == synset_id, ci.n_counted > 0).order_by(ci.candidate_id)
    ).all()
    return np.asarray([(float(y), float(n)) for y, n in rows], dtype=np.float64).reshape(-1, 2)


# -- keeping rows in step with candidates, settling, running jobs ---------------------------------


def check_members(write: Writer, project: Project, settings: CrowdSettings) -> int:
    """Queue rebuilds for synsets whose playable candidates or settings changed since their rows were
    made (new candidates, gold, a settings change). One GROUP BY over candidates: run at start-up and
    now and then, not per request. Returns how many synsets were queued."""
    c, cs = schema.Candidate, schema.CrowdSynset
    fp = settings_fingerprint(settings)
    with project.session() as s:
        counts = {
            str(sid): int(n)
            for sid, n in s.execute(select(c.synset_id, func.count()).where(playable()).group_by(c.synset_id))
        }
        rows = {r.synset_id: (r.n_playable, r.settings_fp, r.refresh_queued) for r in s.scalars(select(cs))}
    stale = sorted(
        sid
        for sid, n in counts.items()
        if sid not in rows or rows[sid][0] != n or (rows[sid][1] != fp and not rows[sid][2])
    )
    stale += sorted(sid for sid, (n, _fp, _q) in rows.items() if sid not in counts and n)
    queued = 0
    for start in range(0, len(stale), 200):
        with write() as s:
            for sid in stale[start : start + 200]:
                queued += request_refresh(s, lock_synset(s, sid), sync=True)
    return queued


def settle(write: Writer, project: Project, settings: CrowdSettings, quiet_s: float = 0.0) -> int:
    """Queue a rebuild for every synset whose table is not exactly current and that got no vote for
    `quiet_s` seconds (0: all of them). Returns how many were queued."""
    cs = schema.CrowdSynset
    fp = settings_fingerprint(settings)
    cutoff = now_utc() - timedelta(seconds=quiet_s)
    with project.session() as s:
        rows = s.scalars(select(cs).where(cs.refresh_queued.is_(False))).all()
        due = [
            r.synset_id
            for r in rows
            if is_stale(r, settings, fp)
            and (quiet_s <= 0 or r.last_vote_at is None or _utc(r.last_vote_at) < cutoff)
        ]
    queued = 0
    for sid in due:
        with write() as s:
            syn = lock_synset(s, sid)
            if is_stale(syn, settings, fp):
                queued += request_refresh(s, syn)
    return queued


def _utc(value: Any) -> Any:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def handlers(
    settings: CrowdSettings, tables: StoredTables, write: Writer, batch: int = BATCH
) -> dict[str, Any]:
    """Job handlers for `benchmark.worker.process_one`: the rebuild runs inside the handler (its own
    batches), the fenced apply only closes the job."""

    def handle(project: Project, job: queue.JobInfo) -> Callable[[Session], None]:
        synset_id, sync = str(job.payload["synset_id"]), bool(job.payload.get("sync", True))
        rebuild(project, synset_id, settings, tables, write, batch=batch, sync=sync)
        return lambda _s: None

    return {REFRESH_KIND: handle}


def run_pending(
    project: Project,
    settings: CrowdSettings,
    tables: StoredTables,
    write: Writer,
    *,
    lease: timedelta = LEASE,
    batch: int = BATCH,
    limit: int | None = None,
    worker: str | None = None,
) -> int:
    """Run queued rebuild jobs now (also those of a runner that died and whose lease ran out)."""
    from synsetforge.benchmark.worker import process_one, worker_name

    worker = worker or worker_name()
    done = 0
    hands = handlers(settings, tables, write, batch)
    while limit is None or done < limit:
        outcome = process_one(project, worker, handlers=hands, lease=lease)
        if outcome is None:
            break
        if outcome.status in ("failed", "retry"):
            log.warning("crowd refresh job %s: %s %s", outcome.job_id, outcome.status, outcome.message)
        done += 1
    return done


class Runner:
    """A daemon thread that runs the crowd's background jobs while a server runs (`synsetforge serve`).

    It wakes when this process queues a job (`wake`) and polls every `poll_s` for jobs queued by other
    processes; every `maintain_s` it re-checks candidates (`check_members`) and settles quiet synsets.
    """

    def __init__(
        self,
        project: Project,
        settings: CrowdSettings,
        tables: StoredTables,
        write: Writer,
        *,
        poll_s: float = 1.0,
        maintain_s: float = 30.0,
        quiet_s: float = 10.0,
    ) -> None:
        self.project, self.settings, self.tables, self.write = project, settings, tables, write
        self.poll_s, self.maintain_s, self.quiet_s = poll_s, maintain_s, quiet_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="crowd-refresh", daemon=True)
                self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        last_maintain = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_maintain > self.maintain_s:
                    last_maintain = time.monotonic()
                    check_members(self.write, self.project, self.settings)
                    settle(self.write, self.project, self.settings, self.quiet_s)
                ran = run_pending(self.project, self.settings, self.tables, self.write, limit=1)
            except Exception:  # keep serving; the job is retried under its lease
                log.exception("crowd refresh runner")
                ran = 0
            if not ran:
                self._wake.wait(self.poll_s)
                self._wake.clear()
