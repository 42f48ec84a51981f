"""`synsetforge worker`: take jobs from the queue and run them; today the only kind scores a submission.

A handler does the slow work outside any transaction and returns a function that writes its results; the
worker calls that function in the transaction that fences the job (see `queue`), so results are written
once, by the worker holding the lease.

Failures: a malformed submission is a result (status `failed`, the parser's message, not counted against
the limit). A `SynsetforgeError` (a missing blob, a deleted submission) fails the job at once. Anything
else is treated as transient and retried, up to `MAX_ATTEMPTS` claims in all.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from synsetforge.benchmark.challenge import now_utc
from synsetforge.benchmark.queue import DEFAULT_LEASE, MAX_ATTEMPTS, JobInfo, claim, exhausted, fence
from synsetforge.benchmark.scoring import load_context, pack_losses, score_file, summarize
from synsetforge.benchmark.submissions import JOB_KIND
from synsetforge.errors import InputError, SynsetforgeError
from synsetforge.store import schema
from synsetforge.store.project import Project

Apply = Callable[[Session], None]
Handler = Callable[[Project, JobInfo], Apply]


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed job."""

    job_id: int
    kind: str
    status: str  # done | failed | retry | lost
    message: str = ""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


# -- scoring --------------------------------------------------------------------------------------


def _mark_submission(project: Project, submission_id: int, status: str) -> None:
    with project.session() as s:
        row = s.get(schema.Submission, submission_id)
        if row is not None and row.status in ("queued", "running"):
            row.status = status


def _fail_submission(s: Session, submission_id: int, message: str) -> None:
    row = s.get(schema.Submission, submission_id)
    if row is not None:
        row.status = "failed"
        row.error = message
        row.counts_against_limit = False
        row.scored_at = now_utc()


def score_submission_job(project: Project, job: JobInfo) -> Apply:
    """Parse and score one submission; results: public and private summaries, per-image losses blob."""
    submission_id = int(job.payload["submission_id"])
    with project.session() as s:
        row = s.get(schema.Submission, submission_id)
        if row is None:
            raise InputError(f"submission {submission_id} no longer exists")
        blob, challenge_id = row.blob, row.challenge_id
    _mark_submission(project, submission_id, "running")
    ctx = load_context(project, challenge_id)
    data = project.blobs.get(blob)
    try:
        scored = score_file(data, ctx)
    except InputError as exc:
        message = str(exc)

        def reject(s: Session) -> None:
            _fail_submission(s, submission_id, message)

        return reject
    settings = ctx.info.settings
    metrics = list(dict.fromkeys([*settings.metrics, settings.rank_by]))
    public = summarize(scored.losses, ctx.public, metrics, settings.n_resamples)
    private = summarize(scored.losses, ~ctx.public, metrics, settings.n_resamples)
    private["losses"] = project.blobs.put(pack_losses(scored.losses))

    def record(s: Session) -> None:
        row = s.get(schema.Submission, submission_id)
        if row is None:
            return
        row.status = "scored"
        row.error = None
        row.format = scored.format
        row.public_scores = public
        row.private_scores = private
        row.scored_at = now_utc()

    return record


def _give_up_submission(s: Session, job: JobInfo) -> None:
    if job.kind == JOB_KIND and "submission_id" in job.payload:
        _fail_submission(
            s,
            int(job.payload["submission_id"]),
            "scoring stopped repeatedly (an internal error); this submission does not count against your limit",
        )


HANDLERS: dict[str, Handler] = {JOB_KIND: score_submission_job}
GIVE_UP: dict[str, Callable[[Session, JobInfo], None]] = {JOB_KIND: _give_up_submission}


def _give_up(s: Session, job: JobInfo) -> None:
    hook = GIVE_UP.get(job.kind)
    if hook is not None:
        hook(s, job)


# -- the loop ---------------------------------------------------------------------------------------


class _LeaseLost(Exception):
    pass


def process_one(
    project: Project,
    worker: str | None = None,
    *,
    handlers: dict[str, Handler] | None = None,
    lease: timedelta = DEFAULT_LEASE,
    max_attempts: int = MAX_ATTEMPTS,
) -> Outcome | None:
    """Claim and run one job; None when the queue has nothing to claim."""
    worker = worker or worker_name()
    handlers = HANDLERS if handlers is None else handlers
    job = claim(project, worker, kinds=list(handlers), lease=lease, max_attempts=max_attempts)
    if job is None:
        return None
    try:
        apply = handlers[job.kind](project, job)
    except SynsetforgeError as exc:
        return _finish_failed(project, job, worker, f"{type(exc).__name__}: {exc}", final=True)
    except Exception as exc:  # a bug or a transient failure: retry a few times
        final = job.attempts >= max_attempts
        return _finish_failed(project, job, worker, f"{type(exc).__name__}: {exc}", final=final)
    try:
        with project.session() as s:
            if not fence(s, job.id, worker, status="done"):
                raise _LeaseLost
            apply(s)
    except _LeaseLost:
        return Outcome(job.id, job.kind, "lost", "the lease expired and another worker took the job")
    return Outcome(job.id, job.kind, "done")


def _finish_failed(project: Project, job: JobInfo, worker: str, message: str, *, final: bool) -> Outcome:
    try:
        with project.session() as s:
            if not fence(s, job.id, worker, status="failed" if final else "queued", error=message):
                raise _LeaseLost
            if final:
                _give_up(s, job)
    except _LeaseLost:
        return Outcome(job.id, job.kind, "lost", message)
    return Outcome(job.id, job.kind, "failed" if final else "retry", message)


def run_worker(
    project: Project,
    *,
    once: bool = False,
    poll: float = 2.0,
    lease: timedelta = DEFAULT_LEASE,
    max_attempts: int = MAX_ATTEMPTS,
    worker: str | None = None,
    stop: threading.Event | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> int:
    """Run jobs until `stop` is set (or, with `once`, until the queue is empty); returns how many ran."""
    if poll <= 0:
        raise InputError(f"--poll must be positive, not {poll}")
    worker = worker or worker_name()
    stop = stop or threading.Event()
    done = 0
    while not stop.is_set():
        exhausted(project, lease=lease, max_attempts=max_attempts, give_up=_give_up)
        outcome = process_one(project, worker, lease=lease, max_attempts=max_attempts)
        if outcome is None:
            if once:
                break
            stop.wait(poll)
            continue
        done += 1
        if on_outcome is not None:
            on_outcome(outcome)
    return done


def drain(project: Project, *, timeout: float = 60.0) -> list[Outcome]:
    """Run every queued job now (tests and the demo): like `worker --once`, returning the outcomes."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + timeout
    worker = worker_name()
    while time.monotonic() < deadline:
        outcome = process_one(project, worker)
        if outcome is None:
            break
        outcomes.append(outcome)
    return outcomes
