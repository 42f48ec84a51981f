"""The crowd verification API in Python: tasks, submissions, workers, tokens, images. No web imports.

The web app and the CLI are thin layers over `CrowdService`; every method is one store transaction, so a
failure (bad payload, expired task, blocked worker) changes nothing. Writes that must not race (assigning
a task, recording a submission, blocking) go through `write()`, which serializes them on SQLite and relies
on row locks on PostgreSQL (see `crowd.assign`).

Live consensus is incremental (`crowd.tallies`, `crowd.incremental`): a submit re-decides only its own
images; table rebuilds and whole-synset re-decisions are jobs in the project's job queue. With
`background=True` (the web server) a daemon thread runs them; otherwise (tests, the CLI, the simulator's
in-process server) each write runs the queued jobs itself right after its transaction commits, outside any
lock, so results are deterministic.
"""

from __future__ import annotations

import collections
import contextlib
import random
import threading
import time
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.attributes import set_committed_value

from synsetforge.crowd import incremental
from synsetforge.crowd import workers as wk
from synsetforge.crowd.assign import (
    OPEN_TASK,
    Contended,
    as_utc,
    assign_task,
    lock_worker,
    open_task_of,
    plan_task,
    sweep_expired,
)
from synsetforge.crowd.consensus import TableCache, playable
from synsetforge.crowd.errors import (
    BOX_TASK_KINDS,
    AccessDeniedError,
    BoxTaskOpenError,
    TaskClosedError,
    WorkerBlockedError,
)
from synsetforge.crowd.record import record_live
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.crowd.tallies import StoredTables, refresh_planner_statistics
from synsetforge.crowd.tokens import completion_code
from synsetforge.errors import InputError, NotFoundError
from synsetforge.store import schema
from synsetforge.store.idlist import BulkInsert, BulkUpdate, Together, table_of
from synsetforge.store.project import Project

SWEEP_EVERY_S = 15.0
BRIEF_TTL_S = 10.0
PRINCIPAL_TTL_S = 5.0
MAX_ANSWERS = 1000


class WriteGate:
    """A process's database work, queued: `capacity` holders at once, submissions first.

    SQLite: capacity 1, its one writer. PostgreSQL: `PG_WRITERS` per process (one; more processes give
    more writers); with every endpoint thread in a transaction at once, a transaction holding a synset's
    row lock waited behind a hundred runnable threads for the interpreter, and everyone queued on that
    lock (two processes served 692 votes/s that way, 1,104 with one writer each).

    Why an order: under load every request waits here, and a submission (a worker's finished answers,
    the shortest write) should not wait behind a queue of task assignments and background batches; a
    next-task waits a little longer instead. Submissions cannot starve the rest: each worker has at most
    one task to submit. Inside each class, first come first served (a plain lock let some next-tasks wait
    30 s while later ones went ahead).
    """

    def __init__(self, capacity: int = 1) -> None:
        self._guard = threading.Lock()
        self._free = capacity
        # one parked lock per waiter, released by the holder that hands its place over to it
        self._queues: dict[bool, collections.deque[threading.Lock]] = {
            True: collections.deque(),
            False: collections.deque(),
        }

    @contextlib.contextmanager
    def hold(self, urgent: bool = False) -> Iterator[None]:
        """Hand-over, not wake-all: a release wakes exactly the next holder (with a hundred waiters, a
        Condition's notify_all woke every thread to find one, about 8% of a loaded server's CPU)."""
        parked = None
        with self._guard:
            if self._free <= 0 or self._queues[True] or self._queues[False]:
                parked = threading.Lock()
                parked.acquire()
                self._queues[urgent].append(parked)
            else:
                self._free -= 1
        if parked is not None:
            parked.acquire()  # our place once a holder releases this (it hands its place over)
        try:
            yield
        finally:
            with self._guard:
                line = self._queues[True] or self._queues[False]
                if line:
                    line.popleft().release()
                else:
                    self._free += 1


# The request path's statements, built once (building one cost about as much as running it on SQLite)
_W, _T, _TI, _V = schema.Worker, schema.Task, schema.TaskItem, schema.Vote
_TASK_HEAD = select(_T.synset_id, _T.created_at, _T.expires_at).where(_T.id == bindparam("tid"))
_TASK_ITEMS = select(_TI.candidate_id).where(_TI.task_id == bindparam("tid")).order_by(_TI.position)
_TASKS_DONE = select(func.count()).where(_T.worker_id == bindparam("wid"), _T.status == "submitted")
_IMAGES_DONE = select(func.count()).select_from(_V).where(_V.worker_id == bindparam("wid"))
_WORKER_PROGRESS = select(_TASKS_DONE.scalar_subquery(), _IMAGES_DONE.scalar_subquery())
# next-task's read phase: the worker's state, progress and open task at once (a new task's view needs no
# read-back)
_WORKER_STATE_PROGRESS = select(
    _W.status,
    _W.blocked_reason,
    _W.gold_total,
    _TASKS_DONE.scalar_subquery().label("done"),
    _IMAGES_DONE.scalar_subquery().label("images"),
    OPEN_TASK.scalar_subquery().label("open_task"),
).where(_W.id == bindparam("wid"))
# the task to submit, a row per item with the answer of a gold one, and how many tasks its worker (locked)
# submitted before (their count after it; evaluated once: it does not depend on the row)
_EARLIER = aliased(schema.Task)
_TASK_ROWS = (
    select(
        _T,
        select(func.count())
        .select_from(_EARLIER)
        .where(_EARLIER.worker_id == bindparam("wid"), _EARLIER.status == "submitted")
        .scalar_subquery(),
        _TI.candidate_id,
        _TI.is_gold,
        schema.Gold.answer,
    )
    .outerjoin(_TI, _TI.task_id == _T.id)
    .outerjoin(schema.Gold, (schema.Gold.candidate_id == _TI.candidate_id) & _TI.is_gold)
    .where(_T.id == bindparam("tid"))
)
_TASK_ROWS_LOCKED = _TASK_ROWS.with_for_update(of=_T)
_NEW_VOTES = BulkInsert(
    table_of(_V), ("candidate_id", "worker_id", "task_id", "label", "is_gold", "weight", "created_at")
)
_TASK_DONE = BulkUpdate(
    table_of(_T), ("_tid", "id"), {"_status": "status", "_at": "submitted_at", "_code": "completion_code"}
)
_GOLD_SCORE = BulkUpdate(table_of(_W), ("_wid", "id"), {"_total": "gold_total", "_correct": "gold_correct"})
_SUBMITTED = Together(_NEW_VOTES, _TASK_DONE, _GOLD_SCORE)

CONTENDED_RETRIES = 4  # PostgreSQL: new tries of an assignment that found its images locked (`Contended`)
PG_WRITERS = 1  # write transactions at once per process on PostgreSQL (`WriteGate`)
_SQLITE_GATES: dict[str, WriteGate] = {}
_SQLITE_GATES_GUARD = threading.Lock()


def _sqlite_gate(url: str) -> WriteGate:
    with _SQLITE_GATES_GUARD:
        return _SQLITE_GATES.setdefault(url, WriteGate())


@dataclass(frozen=True)
class SynsetView:
    id: str
    name: str
    lemmas: tuple[str, ...]
    gloss: str


@dataclass(frozen=True)
class TaskView:
    """What a worker sees: no gold flags, items in display order."""

    task_id: int
    synset: SynsetView
    items: tuple[int, ...]
    examples: tuple[int, ...]
    created_at: datetime
    expires_at: datetime
    tasks_done: int
    images_done: int


@dataclass(frozen=True)
class SubmitResult:
    task_id: int
    votes: int
    completion_code: str
    blocked: bool
    tasks_done: int


@dataclass(frozen=True)
class WorkerSummary:
    worker_id: int
    kind: str
    name: str | None
    status: str
    blocked_reason: str | None
    tasks_done: int
    images_done: int
    last_code: str | None


def _refuse_box_task(s: Session, task_id: int) -> None:
    """A worker holding an open box task gets no yes/no grid until it is done (one open task per worker)."""
    if s.scalar(select(schema.Task.kind).where(schema.Task.id == task_id)) in BOX_TASK_KINDS:
        raise BoxTaskOpenError(
            f"you have an open box task ({task_id}): finish it at /boxes/work first, or let it expire"
        )


class CrowdService:
    """Crowd verification on one project (see the module docstring)."""

    def __init__(
        self,
        project: Project,
        settings: CrowdSettings | None = None,
        *,
        seed: int | None = None,
        background: bool = False,
    ) -> None:
        self.project = project
        self.settings = settings or CrowdSettings.from_project(project)
        self.tables = TableCache()  # tables built by recomputes from scratch (`crowd aggregate`)
        # the live tables, as stored in `crowd_synsets`; a server skips cells it found empty a moment ago
        self.stored = StoredTables(remember_empty=background)
        self.background = background
        self._sqlite = project.dialect == "sqlite"
        self._gate = _sqlite_gate(str(project.engine.url)) if self._sqlite else WriteGate(PG_WRITERS)
        self._last_sweep = 0.0
        self._checked = False
        self._check_lock = threading.Lock()
        self._briefs: dict[str, tuple[float, SynsetView, tuple[int, ...]]] = {}
        self._principals: dict[str, tuple[float, wk.Principal]] = {}
        self._rng = random.Random(seed)  # gold picks and item order; seeded for reproducible simulations
        self.runner = (
            incremental.Runner(project, self.settings, self.stored, self.write) if background else None
        )

    # -- background jobs ----------------------------------------------------------------------------

    def _ensure_checked(self) -> None:
        """Once per service, before its first task: rows for candidates added since, rebuilds after a
        settings change or a schema upgrade (backfilled tallies have no table yet)."""
        if self._checked:
            return
        with self._check_lock:  # other threads wait: until then the live state may not exist yet
            if self._checked:
                return
            # Start-up (also for a server: until then no synset may have its live rows): rows for new
            # candidates, and rebuilds after a settings change or an upgrade, before the first task.
            if incremental.check_members(self.write, self.project, self.settings):
                self.run_jobs()
                refresh_planner_statistics(self.project)
            if self.runner is not None:
                self.runner.start()
            self._checked = True

    def after_write(self) -> None:
        """Call after a transaction that may have queued crowd jobs (`reevaluate` by an import, a block).
        Background: wake the runner thread. Otherwise: run the queued jobs now (outside any lock)."""
        if self.runner is not None:
            self.runner.start()
            self.runner.wake()
        else:
            self.run_jobs()

    _after_write = after_write  # the name the boxes engine looks up

    def run_jobs(self, *, settle: bool = False, lease_s: float | None = None) -> int:
        """Run the queued crowd jobs in this thread; with `settle`, first queue a rebuild for every synset
        whose table is not exactly current (then decisions equal a recompute from scratch)."""
        if settle:
            incremental.check_members(self.write, self.project, self.settings)
            incremental.settle(self.write, self.project, self.settings)
        lease = incremental.LEASE if lease_s is None else timedelta(seconds=lease_s)
        return incremental.run_pending(self.project, self.settings, self.stored, self.write, lease=lease)

    def start(self) -> None:
        """Bring the live state up to date and start the runner thread (a server calls it at start-up)."""
        self._ensure_checked()

    def close(self) -> None:
        if self.runner is not None:
            self.runner.stop()

    # -- transactions -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self, urgent: bool = False) -> Iterator[Session]:
        """A write transaction, queued in `WriteGate` (one at a time per process: SQLite's one writer,
        `PG_WRITERS` on PostgreSQL), `urgent` ones (submissions) first."""
        with self._gate.hold(urgent), self.project.session() as s:
            yield s

    def read(self) -> contextlib.AbstractContextManager[Session]:
        """Reads, not queued (a gate of 2 readers per PostgreSQL process changed nothing); on PostgreSQL
        without a transaction (`Project.reading`)."""
        return self.project.reading()

    # -- tokens and workers -------------------------------------------------------------------------

    def invite(self, name: str | None = None, kind: str = "invite") -> wk.NewWorker:
        """A new in-house worker; the returned token (the invite link) is not stored anywhere."""
        with self.write() as s:
            return wk.create_invite(s, name, kind)

    def create_token(self, role: str = "admin", name: str | None = None) -> str:
        """An admin token or a marketplace key, returned once."""
        with self.write() as s:
            return wk.create_api_token(s, role, name)

    def enter_marketplace(self, key: str, platform: str, external_id: str) -> wk.NewWorker:
        """A marketplace worker arriving through a study link with marketplace key `key`."""
        with self.write() as s:
            if not wk.check_api_token(s, key, "marketplace"):
                raise AccessDeniedError("this study link is not valid")
            new = wk.enter_marketplace(s, platform, external_id)  # a new token replaces the old one
        self._forget_principals()
        return new

    def principal(self, token: str | None) -> wk.Principal | None:
        """Who the token belongs to. A server remembers a worker's for `PRINCIPAL_TTL_S` (two queries
        and a transaction fewer per request; a block is still enforced at once by every task and submit,
        which re-read the worker under its lock). Admin tokens are looked up every time (revocation)."""
        key = wk.hash_token(token) if token and len(token) <= 200 else None
        if self.background and key is not None:
            hit = self._principals.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        with self.read() as s:
            found = wk.find_principal(s, token)
        if self.background and key is not None and found is not None and found.role == "worker":
            if len(self._principals) > 100_000:
                self._principals.clear()
            self._principals[key] = (time.monotonic() + PRINCIPAL_TTL_S, found)
        return found

    def _forget_principals(self) -> None:
        self._principals.clear()

    def block(self, worker_id: int, reason: str = "blocked by an admin") -> int:
        """Block a worker by hand; returns how many image decisions changed (re-queued or re-decided)."""
        with self.write() as s:
            worker = lock_worker(s, worker_id)
            if worker.status == "blocked":
                return 0
            touched = wk.block_worker(s, worker, reason, self.settings)
            changed = self.reevaluate(s, touched)
        self._forget_principals()
        self.after_write()
        return changed

    def unblock(self, worker_id: int) -> int:
        with self.write() as s:
            worker = lock_worker(s, worker_id)
            if worker.status != "blocked":
                return 0
            touched = wk.unblock_worker(s, worker)
            changed = self.reevaluate(s, touched)
        self._forget_principals()
        self.after_write()
        return changed

    def worker_summary(self, worker_id: int) -> WorkerSummary:
        with self.read() as s:
            worker = wk.get_worker(s, worker_id)
            t = schema.Task
            done = int(
                s.scalar(select(func.count()).where(t.worker_id == worker_id, t.status == "submitted")) or 0
            )
            images = int(
                s.scalar(
                    select(func.count()).select_from(schema.Vote).where(schema.Vote.worker_id == worker_id)
                )
                or 0
            )
            code = s.scalar(
                select(t.completion_code)
                .where(t.worker_id == worker_id, t.status == "submitted")
                .order_by(t.id.desc())
                .limit(1)
            )
            return WorkerSummary(
                worker.id, worker.kind, worker.name, worker.status, worker.blocked_reason, done, images, code
            )

    def completion_of(self, worker_id: int, task_id: int) -> str:
        """The completion code of one of the worker's submitted tasks (NotFoundError otherwise)."""
        with self.read() as s:
            task = s.get(schema.Task, task_id)
            if task is None or task.worker_id != worker_id or task.status != "submitted":
                raise NotFoundError(f"no submitted task {task_id} for this worker")
            return task.completion_code or ""

    # -- tasks --------------------------------------------------------------------------------------

    def next_task(self, worker_id: int) -> TaskView | None:
        """The worker's open task, or a new one; None when nothing needs this worker right now.

        Ranking reads a snapshot without locks (`assign.plan_task`); the write transaction only locks the
        worker, re-checks the chosen images and inserts the task (`assign.assign_task`). A new task's view
        is built from what was inserted and the progress read before the lock, not read back: on
        PostgreSQL every round trip inside the write gate delays the writers queued behind it. When every
        image it ranked was claimed by concurrent assignments (`Contended`, PostgreSQL), the transaction is
        rolled back and the whole assignment tried again after a short pause, outside the gate.
        """
        self._ensure_checked()
        for attempt in range(CONTENDED_RETRIES + 1):
            try:
                return self._next_task(worker_id, datetime.now(UTC))
            except Contended:  # rolled back: the locks and the gate are free for the others meanwhile
                time.sleep(0.02 * (attempt + 1))
        return None

    def _next_task(self, worker_id: int, now: datetime) -> TaskView | None:
        with self.read() as s:
            found = s.connection().execute(_WORKER_STATE_PROGRESS, {"wid": worker_id, "now": now}).first()
            if found is None:
                raise NotFoundError(f"no worker with id {worker_id}")
            if found.status != "active":
                raise WorkerBlockedError(found.blocked_reason or "this worker is blocked")
            task_id = found.open_task
            if task_id is not None:
                _refuse_box_task(s, task_id)
                return self._task_view(s, worker_id, task_id)
            plan = plan_task(s, worker_id, self.settings, self.stored, now, self._rng, int(found.gold_total))
        with self.write() as s:
            worker = lock_worker(s, worker_id)
            if worker.status != "active":
                raise WorkerBlockedError(worker.blocked_reason or "this worker is blocked")
            if time.monotonic() - self._last_sweep > SWEEP_EVERY_S:
                self._last_sweep = time.monotonic()
                sweep_expired(s, now)
            task_id = open_task_of(s, worker_id, now)
            if task_id is not None:  # made meanwhile by another request of this worker
                _refuse_box_task(s, task_id)
                return self._task_view(s, worker_id, task_id)
            if plan is None:
                return None
            new = assign_task(s, worker_id, self.settings, self.stored, now, self._rng, plan)
            if new is None:
                return None
            synset, examples = self._synset_brief(s, new.synset_id)
        return TaskView(
            task_id=new.task_id,
            synset=synset,
            items=new.items,
            examples=examples,
            created_at=new.created_at,
            expires_at=new.expires_at,
            tasks_done=int(found.done or 0),  # read before the lock: assigning a task changes neither
            images_done=int(found.images or 0),
        )

    def task_view(self, worker_id: int, task_id: int) -> TaskView:
        """An open task of this worker (NotFoundError for anyone else's, or a closed one)."""
        with self.read() as s:
            task = s.get(schema.Task, task_id)
            if task is None or task.worker_id != worker_id or task.kind in BOX_TASK_KINDS:
                raise NotFoundError(f"no task {task_id} for this worker")
            return self._task_view(s, worker_id, task_id)

    def _task_view(self, s: Session, worker_id: int, task_id: int) -> TaskView:
        conn = s.connection()
        task = conn.execute(_TASK_HEAD, {"tid": task_id}).one()
        synset, examples = self._synset_brief(s, task.synset_id)
        items = tuple(int(x) for x in conn.execute(_TASK_ITEMS, {"tid": task_id}).scalars())
        done, images = conn.execute(_WORKER_PROGRESS, {"wid": worker_id}).one()
        return TaskView(
            task_id=task_id,
            synset=synset,
            items=items,
            examples=examples,
            created_at=as_utc(task.created_at) or datetime.now(UTC),
            expires_at=as_utc(task.expires_at) or datetime.now(UTC),
            tasks_done=int(done or 0),
            images_done=int(images or 0),
        )

    def _synset_brief(self, s: Session, synset_id: str) -> tuple[SynsetView, tuple[int, ...]]:
        """The synset's words and its example images, remembered for `BRIEF_TTL_S` by a server (they
        change rarely, and reading them cost two queries per task)."""
        if self.background:
            hit = self._briefs.get(synset_id)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1], hit[2]
        syn = s.get(schema.Synset, synset_id)
        assert syn is not None
        c = schema.Candidate
        examples: tuple[int, ...] = ()
        if self.settings.examples:
            examples = tuple(
                s.scalars(
                    select(c.id)
                    .where(playable(synset_id), c.decision == "accepted")
                    .order_by(c.confidence.desc(), c.id)
                    .limit(self.settings.examples)
                )
            )
        lemmas = tuple(str(x).replace("_", " ") for x in syn.lemmas)
        view = SynsetView(syn.id, lemmas[0] if lemmas else syn.id, lemmas, syn.gloss or "")
        if self.background:
            if len(self._briefs) > 10_000:
                self._briefs.clear()
            self._briefs[synset_id] = (time.monotonic() + BRIEF_TTL_S, view, examples)
        return view, examples

    def submit(self, worker_id: int, task_id: int, yes: Collection[int]) -> SubmitResult:
        """Record the worker's answers: every image of the task gets a vote, yes if its id is in `yes`.

        Refused without any change: ids not in the task (InputError), someone else's task (NotFoundError),
        a submitted or expired task (TaskClosedError), a blocked worker (WorkerBlockedError).
        """
        if len(yes) > MAX_ANSWERS:
            raise InputError(f"too many answers ({len(yes)}; at most {MAX_ANSWERS})")
        ticked = set(yes)
        now = datetime.now(UTC)
        self._ensure_checked()
        try:
            with self.write(urgent=True) as s:
                worker = lock_worker(s, worker_id)
                if worker.status != "active":
                    raise WorkerBlockedError(worker.blocked_reason or "this worker is blocked")
                # the task and its items in one statement (inside the gate every round trip counts)
                found = s.execute(
                    _TASK_ROWS if self._sqlite else _TASK_ROWS_LOCKED, {"tid": task_id, "wid": worker_id}
                ).all()
                if not found or found[0][0].worker_id != worker_id:
                    raise NotFoundError(f"no task {task_id} for this worker")
                task, done_before = found[0][0], int(found[0][1] or 0)
                if task.kind in BOX_TASK_KINDS:
                    raise InputError(f"task {task_id} is a box task: submit it at /api/v1/box-task/{task_id}")
                if task.status == "submitted":
                    raise TaskClosedError(f"task {task_id} was already submitted")
                expires = as_utc(task.expires_at)
                if task.status != "open" or (expires is not None and expires <= now):
                    raise TaskClosedError(
                        f"task {task_id} expired; its images went back to the pool, please take a new task"
                    )
                rows = [(cid, is_gold, ans) for _, _, cid, is_gold, ans in found if cid is not None]
                items = [(int(cid), bool(is_gold)) for cid, is_gold, _ in rows]
                answers = {int(cid): bool(ans) for cid, is_gold, ans in rows if is_gold and ans is not None}
                in_task = {cid for cid, _ in items}
                strangers = ticked - in_task
                if strangers:
                    raise InputError(
                        f"{len(strangers)} answer(s) name images that are not in task {task_id}: "
                        f"{sorted(strangers)[:5]}"
                    )
                votes = [
                    {
                        "candidate_id": cid,
                        "worker_id": worker_id,
                        "task_id": task_id,
                        "label": cid in ticked,
                        "is_gold": bool(is_gold),
                        "weight": 1.0,
                        "created_at": now,
                    }
                    for cid, is_gold in sorted(items)
                ]
                gold_ids = [cid for cid, is_gold in items if is_gold]
                code = completion_code()
                done = {"_tid": task_id, "_status": "submitted", "_at": now, "_code": code}
                scored = []
                if answers:  # the worker's row is locked: read, add, write
                    right = sum((cid in ticked) == ans for cid, ans in answers.items())
                    scored = [
                        {
                            "_wid": worker_id,
                            "_total": worker.gold_total + len(answers),
                            "_correct": worker.gold_correct + right,
                        }
                    ]
                # the votes, the task's new state and the worker's gold score: one round trip on PostgreSQL
                _SUBMITTED.run(s.connection(), votes, [done], scored)
                # what it wrote, on the session's objects without making them dirty (no second write)
                for key, value in (("status", "submitted"), ("submitted_at", now), ("completion_code", code)):
                    set_committed_value(task, key, value)
                for row in scored:
                    set_committed_value(worker, "gold_total", row["_total"])
                    set_committed_value(worker, "gold_correct", row["_correct"])
                own = {cid for cid, is_gold in items if not is_gold}
                reason = wk.block_reason(worker, self.settings)
                if reason is None:
                    changed = incremental.touch(
                        s, task.synset_id, own, self.settings, self.stored,
                        votes_added=(len(items), len(gold_ids)),
                    )  # fmt: skip
                    if changed:
                        record_live(s, self.settings)
                else:
                    touched: dict[str, set[int]] = defaultdict(set)
                    touched[task.synset_id].update(own)
                    for sid, ids in wk.block_worker(s, worker, reason, self.settings).items():
                        touched[sid].update(ids)
                    self.reevaluate(s, touched)
                result = SubmitResult(task_id, len(items), code, reason is not None, done_before + 1)
        except IntegrityError:
            raise TaskClosedError(f"task {task_id}: these images already have your answers") from None
        if result.blocked:
            self._forget_principals()
        self.after_write()
        return result

    def reevaluate(self, s: Session, touched: dict[str, set[int]]) -> int:
        """Recount and re-decide touched candidates (votes inserted or re-weighted outside `submit`: blocks,
        imports, box tasks) in the caller's transaction; the synsets' vote counters are recounted and a
        rebuild is queued where the table's inputs moved (it re-decides the rest of the synset).

        Why the rest of the synset too, decided images included: a decision always is what the current
        table says about the current votes (as `crowd aggregate` would recompute it). Deciding only open
        images at each rebuild would keep what any earlier table decided and give each borderline image a
        fresh chance with every table, so the accepted set would be the union of all tables' accept cells
        (simulation: tables rebuilt ~50 times per synset; images accepted at (5, 1) by one table whose
        successors needed (6, 1)). An image the new table no longer decides goes back to the pool.
        """
        changed = 0
        for sid in sorted(touched):
            changed += incremental.touch(s, sid, touched[sid], self.settings, self.stored)
        if changed:
            record_live(s, self.settings)
        return changed

    def refresh(self, synset_ids: Collection[str] | None = None) -> int:
        """Recompute every synset's live state from scratch (after importing votes or changing settings):
        tallies recounted, tables rebuilt, every image re-decided. Returns how many decisions changed."""
        with self.read() as s:
            ids = (
                sorted(synset_ids)
                if synset_ids is not None
                else sorted(set(s.scalars(select(schema.Candidate.synset_id).where(playable()).distinct())))
            )
        changed = sum(
            incremental.rebuild(self.project, sid, self.settings, self.stored, self.write, heal=True)
            for sid in ids
        )
        refresh_planner_statistics(self.project)
        return changed

    # -- images -------------------------------------------------------------------------------------

    def image(self, principal: wk.Principal, candidate_id: int) -> tuple[bytes, str]:
        """The image bytes of a candidate, for an admin or a worker holding it in an open task (or as an
        example of an open task's synset). Anyone else gets NotFoundError (existence is not revealed)."""
        now = datetime.now(UTC)
        c, i, t, ti = schema.Candidate, schema.Image, schema.Task, schema.TaskItem
        with self.read() as s:
            if principal.role != "admin":
                if principal.worker_id is None or principal.status != "active":
                    raise NotFoundError("no such image")
                mine = (t.worker_id == principal.worker_id) & (t.status == "open") & (t.expires_at > now)
                in_task = s.scalar(
                    select(exists().where(ti.task_id == t.id, ti.candidate_id == candidate_id, mine))
                )
                if not in_task:
                    example = s.scalar(
                        select(
                            exists().where(
                                c.id == candidate_id,
                                c.decision == "accepted",
                                playable(),
                                c.synset_id.in_(select(t.synset_id).where(mine)),
                            )
                        )
                    )
                    if not example:
                        raise NotFoundError("no such image")
            blob = s.scalar(select(i.blob).join(c, c.image_id == i.id).where(c.id == candidate_id))
        if blob is None:
            raise NotFoundError("no such image")
        data = self.project.blobs.get(blob)
        return data, sniff_media_type(data)


def sniff_media_type(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"
