"""Receiving submissions: size limit, open dates, the per-team daily limit, then a queued scoring job.

Nothing is parsed here: the file is stored as a blob and a `score_submission` job is queued in the same
transaction, so the request path stays O(upload). Every limit is checked before the blob is written, and a
request refused after writing it (a race for the team's last slot) removes the blob unless a row uses it. The worker parses it; a malformed file ends `failed` with
the parser's line/field/reason message and stops counting against the limit.

The limit is per TEAM over any 24 hours. The check-and-insert runs after locking the team's row (a no-op
UPDATE: a row lock on PostgreSQL, the write lock on SQLite), so two accounts of one team submitting at the
same moment cannot both take the last slot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from synsetforge.benchmark.challenge import challenge_row, get_challenge, now_utc, utc
from synsetforge.benchmark.participants import Account, account
from synsetforge.benchmark.queue import enqueue
from synsetforge.benchmark.scoring import sniff_format
from synsetforge.errors import InputError, NotFoundError
from synsetforge.store import schema
from synsetforge.store.blobs import sha256_hex
from synsetforge.store.project import Project

log = logging.getLogger(__name__)
WINDOW = timedelta(hours=24)
JOB_KIND = "score_submission"


class LimitReached(InputError):
    """The team has used its submissions for the last 24 hours (HTTP 429)."""


class UploadTooLarge(InputError):
    """The file is over the challenge's upload limit (HTTP 413)."""


class ChallengeClosed(InputError):
    """The challenge has not started or has ended (HTTP 403)."""


@dataclass(frozen=True)
class Usage:
    used: int
    limit: int
    next_slot_at: datetime | None  # when the oldest counted submission leaves the window (at the limit)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class Receipt:
    id: int
    challenge: str
    team: str
    format: str
    bytes: int
    job_id: int
    usage: Usage


def _usage(s: Session, challenge_id: int, team_id: int, limit: int, now: datetime) -> Usage:
    sub = schema.Submission
    rows = list(
        s.scalars(
            select(sub.created_at)
            .where(
                sub.challenge_id == challenge_id,
                sub.team_id == team_id,
                sub.counts_against_limit.is_(True),
                sub.created_at > now - WINDOW,
            )
            .order_by(sub.created_at)
        )
    )
    next_slot = None
    if len(rows) >= limit:
        oldest = utc(rows[len(rows) - limit])
        next_slot = oldest + WINDOW if oldest else None
    return Usage(len(rows), limit, next_slot)


def usage(project: Project, challenge: str | int, team_id: int, *, now: datetime | None = None) -> Usage:
    info = get_challenge(project, challenge)
    with project.session() as s:
        return _usage(s, info.id, team_id, info.settings.daily_limit, now or now_utc())


def submit(
    project: Project,
    challenge: str | int,
    who: Account | int,
    data: bytes,
    *,
    now: datetime | None = None,
) -> Receipt:
    """Store `data` and queue its scoring for `who`'s team; refuses over the team's daily limit."""
    now = now or now_utc()
    acct = who if isinstance(who, Account) else account(project, who)
    info = get_challenge(project, challenge)
    if not info.is_open(now):
        when = info.starts_at if info.status(now) == "not started" else info.ends_at
        verb = "opens" if info.status(now) == "not started" else "ended"
        raise ChallengeClosed(
            f"challenge {info.name!r} {verb} at {when:%Y-%m-%d %H:%M} UTC; no submissions now"
        )
    limit_bytes = info.settings.max_upload_bytes
    if len(data) > limit_bytes:
        raise UploadTooLarge(
            f"the file is {len(data):,} bytes; this challenge accepts at most {limit_bytes:,}"
        )
    if not data.strip():
        raise InputError("the file is empty: expected one line per test image (or a Kaggle CSV)")
    fmt = sniff_format(data)
    with project.session() as s:  # refuse before a byte is stored; checked again under the team's lock
        _within_limit(s, info.id, acct, info.settings.daily_limit, now)
    created = not project.blobs.exists(sha256_hex(data))
    key = project.blobs.put(data)
    try:
        with project.session() as s:
            # lock the team first: serialises concurrent submissions of one team across all its accounts
            s.execute(
                update(schema.Team)
                .where(schema.Team.id == acct.team_id)
                .values(name=schema.Team.name)
                .execution_options(synchronize_session=False)
            )
            used = _within_limit(s, info.id, acct, info.settings.daily_limit, now)
            row = schema.Submission(
                challenge_id=info.id,
                team_id=acct.team_id,
                participant_id=acct.id,
                blob=key,
                format=fmt,
                status="queued",
                created_at=now,
            )
            s.add(row)
            s.flush()
            job_id = enqueue(s, JOB_KIND, {"submission_id": row.id})
            after = Usage(used.used + 1, used.limit, None)
            receipt = Receipt(row.id, info.name, acct.team, fmt, len(data), job_id, after)
    except BaseException:
        if created:  # a refused request leaves no file behind (unless a row took the same bytes meanwhile)
            _discard_unreferenced(project, key)
        raise
    return receipt


def _within_limit(s: Session, challenge_id: int, acct: Account, limit: int, now: datetime) -> Usage:
    """The team's usage; raises LimitReached when it has no submission left in the window."""
    used = _usage(s, challenge_id, acct.team_id, limit, now)
    if used.remaining == 0:
        at = f"; the next slot opens at {used.next_slot_at:%Y-%m-%d %H:%M} UTC" if used.next_slot_at else ""
        raise LimitReached(
            f"team {acct.team!r} has used its {used.limit} submissions for the last 24 hours "
            f"(the limit is per team, across all its accounts){at}"
        )
    return used


def _discard_unreferenced(project: Project, key: str) -> None:
    """Delete the blob `key` unless a submission or an image refers to it (blobs are shared by content)."""
    try:
        with project.session() as s:
            for column in (schema.Submission.blob, schema.Image.blob):
                if s.scalar(select(func.count()).where(column == key)):
                    return
        project.blobs.delete(key)
    except Exception:  # best effort: the request's own error is the one to report
        log.warning("could not remove the unused submission blob %s", key, exc_info=True)


def submission_row(project: Project, submission_id: int, *, team_id: int | None = None) -> schema.Submission:
    """A submission; with `team_id`, only that team's (anything else reads as not found)."""
    with project.session() as s:
        row = s.get(schema.Submission, submission_id)
        if row is None or (team_id is not None and row.team_id != team_id):
            raise NotFoundError(f"no submission {submission_id}")
        s.expunge(row)
        return row


def team_submission_rows(project: Project, challenge: str | int, team_id: int) -> list[schema.Submission]:
    with project.session() as s:
        ch = challenge_row(s, challenge)
        rows = list(
            s.scalars(
                select(schema.Submission)
                .where(schema.Submission.challenge_id == ch.id, schema.Submission.team_id == team_id)
                .order_by(schema.Submission.created_at.desc(), schema.Submission.id.desc())
            )
        )
        for r in rows:
            s.expunge(r)
        return rows


def count_submissions(project: Project, challenge: str | int) -> dict[str, int]:
    with project.session() as s:
        ch = challenge_row(s, challenge)
        rows = s.execute(
            select(schema.Submission.status, func.count())
            .where(schema.Submission.challenge_id == ch.id)
            .group_by(schema.Submission.status)
        )
        return {str(k): int(v) for k, v in rows}
