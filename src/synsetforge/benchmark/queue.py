"""A durable job queue in the project database (table `jobs`), so scoring runs off the request path.

Claiming is one statement: `UPDATE jobs SET status='running', locked_by=..., locked_at=now ... WHERE id =
(SELECT id ... LIMIT 1) RETURNING id`. On PostgreSQL the inner SELECT takes `FOR UPDATE SKIP LOCKED`, so
any number of workers claim different jobs without waiting on each other. On SQLite the statement runs
under the database's single write lock, so claims are still exclusive; run one worker there.

A job is leased, not owned: a running job whose `locked_at` is older than the lease (its worker died) is
claimed again. Finishing is fenced: `finish` only succeeds for the worker that holds the current lease, in
the same transaction as the job's results, so a slow worker whose lease was taken over can never overwrite
the new owner's result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from synsetforge.benchmark.challenge import now_utc, utc
from synsetforge.store import schema
from synsetforge.store.project import Project

DEFAULT_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class JobInfo:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    locked_by: str | None
    locked_at: datetime | None


def enqueue(session: Session, kind: str, payload: dict[str, Any]) -> int:
    """Add a job in the caller's transaction (so it exists exactly when the caller's rows do)."""
    job = schema.Job(kind=kind, payload=payload, status="queued")
    session.add(job)
    session.flush()
    return job.id


def _claimable(stale: datetime, max_attempts: int) -> Any:
    j = schema.Job
    return or_(
        j.status == "queued",
        and_(j.status == "running", j.locked_at < stale, j.attempts < max_attempts),
    )


def claim(
    project: Project,
    worker: str,
    *,
    kinds: Iterable[str] | None = None,
    lease: timedelta = DEFAULT_LEASE,
    max_attempts: int = MAX_ATTEMPTS,
    now: datetime | None = None,
) -> JobInfo | None:
    """Lease the oldest claimable job to `worker`, or None when there is none."""
    now = now or now_utc()
    j = schema.Job
    claimable = _claimable(now - lease, max_attempts)
    inner = select(j.id).where(claimable).order_by(j.id).limit(1)
    if kinds is not None:
        inner = inner.where(j.kind.in_(list(kinds)))
    if project.dialect == "postgresql":
        inner = inner.with_for_update(skip_locked=True)
    stmt = (
        update(j)
        .where(j.id == inner.scalar_subquery(), claimable)  # re-checked if another worker got there first
        .values(status="running", locked_by=worker, locked_at=now, attempts=j.attempts + 1, error=None)
        .returning(j.id, j.kind, j.payload, j.attempts)
        .execution_options(synchronize_session=False)
    )
    with project.session() as s:
        row = s.execute(stmt).first()
    if row is None:
        return None
    return JobInfo(int(row[0]), str(row[1]), dict(row[2] or {}), int(row[3]), worker, now)


def fence(session: Session, job_id: int, worker: str, *, status: str, error: str | None = None) -> bool:
    """Move a job this worker still holds to `status` (done|failed|queued) in the caller's transaction.

    False when the lease was lost (another worker reclaimed the job): the caller must then roll back.
    """
    j = schema.Job
    values: dict[str, Any] = {"status": status, "error": error}
    if status == "queued":
        values.update(locked_by=None, locked_at=None)
    else:
        values["finished_at"] = now_utc()
    result = session.execute(
        update(j)
        .where(j.id == job_id, j.locked_by == worker, j.status == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def renew(project: Project, job_id: int, worker: str) -> bool:
    """Extend a lease for a long job; False when it was lost."""
    j = schema.Job
    with project.session() as s:
        result = s.execute(
            update(j)
            .where(j.id == job_id, j.locked_by == worker, j.status == "running")
            .values(locked_at=now_utc())
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1


def exhausted(
    project: Project,
    *,
    lease: timedelta = DEFAULT_LEASE,
    max_attempts: int = MAX_ATTEMPTS,
    now: datetime | None = None,
    give_up: Callable[[Session, JobInfo], None] | None = None,
) -> list[int]:
    """Fail jobs whose worker died `max_attempts` times (a job that crashes every worker must stop)."""
    now = now or now_utc()
    j = schema.Job
    failed: list[int] = []
    with project.session() as s:
        rows = s.scalars(
            select(j)
            .where(j.status == "running", j.locked_at < now - lease, j.attempts >= max_attempts)
            .order_by(j.id)
        ).all()
        for job in rows:
            job.status = "failed"
            job.error = (
                f"gave up after {job.attempts} attempts: the worker stopped before finishing each time"
            )
            job.finished_at = now
            failed.append(job.id)
            if give_up is not None:
                give_up(s, _info(job))
    return failed


def _info(job: schema.Job) -> JobInfo:
    return JobInfo(job.id, job.kind, dict(job.payload or {}), job.attempts, job.locked_by, utc(job.locked_at))


def get_job(project: Project, job_id: int) -> JobInfo | None:
    with project.session() as s:
        job = s.get(schema.Job, job_id)
        return None if job is None else _info(job)


def counts(project: Project) -> dict[str, int]:
    """Jobs by status, for `synsetforge worker` and the challenge pages."""
    from sqlalchemy import func

    with project.session() as s:
        rows = s.execute(select(schema.Job.status, func.count()).group_by(schema.Job.status))
        return {str(status): int(n) for status, n in rows}
