"""Workers and tokens: invite links, marketplace entry, admin tokens, gold accounting and blocking.

Why two kinds of worker entry: in-house annotators get a personal invite link (the token is the link), while
marketplace workers (MTurk ExternalQuestion, Prolific) arrive with their platform id in the URL; the link
they follow carries a *marketplace key* (an api_tokens row, role "marketplace") so that strangers cannot
mint workers, and each entry issues a fresh session token for that platform id. Like the platforms
themselves, this trusts the id in the URL: anyone holding the study link can claim any id.

Blocking (SPEC §3 "gold questions ... to measure and block workers"): after `block_min_gold` gold answers a
worker whose gold accuracy is under `block_threshold` is blocked; their votes get the policy's weight (0:
excluded; or the down-weight) and every image they voted on is re-evaluated, so images whose decision no
longer holds go back to the pool.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from synsetforge.crowd.settings import CrowdSettings
from synsetforge.crowd.tokens import hash_token, new_token
from synsetforge.errors import InputError, NotFoundError
from synsetforge.store import schema

PLATFORMS = ("mturk", "prolific", "generic")
ROLES = ("admin", "marketplace")
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,120}$")


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to. `role` is "admin" or "worker"; `worker_id` is set for workers."""

    role: str
    token: str
    worker_id: int | None = None
    kind: str | None = None  # worker kind: invite | marketplace | expert
    status: str = "active"
    name: str | None = None


@dataclass(frozen=True)
class NewWorker:
    worker_id: int
    token: str


def create_invite(session: Session, name: str | None = None, kind: str = "invite") -> NewWorker:
    """An in-house worker (or an expert) with a fresh token; the token is shown once and never stored."""
    if kind not in ("invite", "expert"):
        raise InputError(f"worker kind must be 'invite' or 'expert', not {kind!r}")
    if name is not None and len(name) > 200:
        raise InputError("worker name must be at most 200 characters")
    token = new_token()
    worker = schema.Worker(kind=kind, name=name, token_hash=hash_token(token), status="active")
    session.add(worker)
    session.flush()
    return NewWorker(worker.id, token)


def enter_marketplace(session: Session, platform: str, external_id: str) -> NewWorker:
    """Find or create the marketplace worker `platform:external_id` and issue a new session token."""
    if platform not in PLATFORMS:
        raise InputError(f"unknown marketplace {platform!r}; expected one of {list(PLATFORMS)}")
    if not _EXTERNAL_ID.match(external_id or ""):
        raise InputError("the worker id in the link is missing or malformed")
    key = f"{platform}:{external_id}"
    token = new_token()
    w = schema.Worker
    worker = session.scalars(select(w).where(w.kind == "marketplace", w.external_id == key)).first()
    if worker is None:
        try:
            with session.begin_nested():
                worker = w(kind="marketplace", external_id=key, name=platform, status="active")
                session.add(worker)
                session.flush()
        except IntegrityError:  # the same worker entered twice at once
            worker = session.scalars(select(w).where(w.kind == "marketplace", w.external_id == key)).one()
    worker.token_hash = hash_token(token)
    session.flush()
    return NewWorker(worker.id, token)


def create_api_token(session: Session, role: str = "admin", name: str | None = None) -> str:
    """An admin token or a marketplace key; only its hash is stored, the token is returned once."""
    if role not in ROLES:
        raise InputError(f"token role must be one of {list(ROLES)}, not {role!r}")
    token = new_token()
    session.add(schema.ApiToken(role=role, name=name, token_hash=hash_token(token)))
    session.flush()
    return token


def check_api_token(session: Session, token: str | None, role: str) -> bool:
    if not token or len(token) > 200:
        return False
    t = schema.ApiToken
    row = session.scalars(
        select(t).where(t.token_hash == hash_token(token), t.role == role, t.revoked.is_(False))
    ).first()
    return row is not None


def find_principal(session: Session, token: str | None) -> Principal | None:
    """The admin or worker a bearer token / cookie belongs to (None for unknown, revoked or malformed)."""
    if not token or len(token) > 200:
        return None
    digest = hash_token(token)
    t = schema.ApiToken
    admin = session.scalars(
        select(t).where(t.token_hash == digest, t.role == "admin", t.revoked.is_(False))
    ).first()
    if admin is not None:
        return Principal("admin", token, name=admin.name)
    worker = session.scalars(select(schema.Worker).where(schema.Worker.token_hash == digest)).first()
    if worker is not None:
        return Principal("worker", token, worker.id, worker.kind, worker.status, worker.name)
    return None


def gold_accuracy(worker: schema.Worker) -> float | None:
    return worker.gold_correct / worker.gold_total if worker.gold_total else None


def block_reason(worker: schema.Worker, settings: CrowdSettings) -> str | None:
    """Why the worker should be blocked now under the automatic rule, or None."""
    acc = gold_accuracy(worker)
    if worker.status != "active" or acc is None or worker.gold_total < settings.block_min_gold:
        return None
    if acc < settings.block_threshold:
        return (
            f"gold accuracy {worker.gold_correct}/{worker.gold_total} = {acc:.0%} is below "
            f"{settings.block_threshold:.0%}"
        )
    return None


def _touched(session: Session, worker_id: int) -> dict[str, set[int]]:
    """Non-gold candidates the worker voted on, by synset."""
    c, v = schema.Candidate, schema.Vote
    out: dict[str, set[int]] = defaultdict(set)
    rows = session.execute(
        select(v.candidate_id, c.synset_id)
        .join(c, c.id == v.candidate_id)
        .where(v.worker_id == worker_id, v.is_gold.is_(False))
    )
    for cid, sid in rows:
        out[sid].add(cid)
    return out


def block_worker(
    session: Session, worker: schema.Worker, reason: str, settings: CrowdSettings
) -> dict[str, set[int]]:
    """Block a worker: their votes get the policy weight, their open tasks expire.

    Returns the candidates to re-evaluate (by synset); the caller re-runs consensus on them, which puts
    those whose decision no longer holds back into the pool.
    """
    worker.status = "blocked"
    worker.blocked_reason = reason[:1000]
    session.execute(
        update(schema.Vote)
        .where(schema.Vote.worker_id == worker.id)
        .values(weight=settings.blocked_vote_weight)
    )
    t = schema.Task
    session.execute(update(t).where(t.worker_id == worker.id, t.status == "open").values(status="expired"))
    session.flush()
    return _touched(session, worker.id)


def unblock_worker(session: Session, worker: schema.Worker) -> dict[str, set[int]]:
    """Undo a block: full weight again, and a fresh start on gold (else the rule would re-block at once)."""
    worker.status = "active"
    worker.blocked_reason = None
    worker.gold_correct = 0
    worker.gold_total = 0
    session.execute(update(schema.Vote).where(schema.Vote.worker_id == worker.id).values(weight=1.0))
    session.flush()
    return _touched(session, worker.id)


def get_worker(session: Session, worker_id: int) -> schema.Worker:
    worker = session.get(schema.Worker, worker_id)
    if worker is None:
        raise NotFoundError(f"no worker with id {worker_id}")
    return worker


def utcnow() -> datetime:
    return datetime.now(UTC)
