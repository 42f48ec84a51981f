"""Teams and participant accounts with API tokens (only SHA-256 hashes are stored).

Limits and visibility belong to the team, not the account: ILSVRC disqualified a team that used 30 accounts
to make 200 submissions (SPEC 5), so every check here resolves a token to its team.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from synsetforge.errors import InputError, NotFoundError
from synsetforge.store import schema
from synsetforge.store.project import Project

TOKEN_PREFIX = "sfp_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Account:
    """A participant as authenticated by a token."""

    id: int
    name: str
    team_id: int
    team: str
    outside_data: bool


def _check_label(what: str, value: str) -> str:
    value = value.strip()
    if not value or len(value) > 200:
        raise InputError(f"{what} must be 1-200 characters")
    if any(not c.isprintable() for c in value):
        raise InputError(f"{what} must not hold control characters")
    return value


def create_team(project: Project, name: str, *, outside_data: bool = False) -> int:
    """A new team; `outside_data` puts its entries in the track for teams that used more than the release."""
    name = _check_label("team name", name)
    try:
        with project.session() as s:
            if s.scalar(select(schema.Team.id).where(schema.Team.name == name)) is not None:
                raise InputError(f"a team named {name!r} already exists")
            row = schema.Team(name=name, outside_data=outside_data)
            s.add(row)
            s.flush()
            return row.id
    except IntegrityError:
        raise InputError(f"a team named {name!r} already exists") from None


def team_id(project: Project, name: str) -> int:
    with project.session() as s:
        tid = s.scalar(select(schema.Team.id).where(schema.Team.name == name))
        if tid is None:
            raise NotFoundError(f"no team named {name!r}")
        return int(tid)


def ensure_team(project: Project, name: str, *, outside_data: bool = False) -> int:
    try:
        return team_id(project, name)
    except NotFoundError:
        return create_team(project, name, outside_data=outside_data)


def create_account(project: Project, team: str | int, name: str) -> tuple[Account, str]:
    """A participant in `team` and its token. The token is returned once; only its hash is kept."""
    name = _check_label("account name", name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with project.session() as s:
        if isinstance(team, int):
            row = s.get(schema.Team, team)
        else:
            row = s.scalar(select(schema.Team).where(schema.Team.name == team))
        if row is None:
            raise NotFoundError(f"no team named {team!r}")
        p = schema.Participant(team_id=row.id, name=name, token_hash=hash_token(token))
        s.add(p)
        s.flush()
        return Account(p.id, name, row.id, row.name, bool(row.outside_data)), token


def authenticate(project: Project, token: str | None) -> Account | None:
    """The account owning `token`, or None (unknown, empty or malformed tokens alike)."""
    if not token or len(token) > 200:
        return None
    with project.session() as s:
        row = s.execute(
            select(schema.Participant, schema.Team)
            .join(schema.Team, schema.Team.id == schema.Participant.team_id)
            .where(schema.Participant.token_hash == hash_token(token))
        ).first()
        if row is None:
            return None
        p, t = row
        return Account(p.id, p.name, t.id, t.name, bool(t.outside_data))


def account(project: Project, participant_id: int) -> Account:
    with project.session() as s:
        p = s.get(schema.Participant, participant_id)
        if p is None:
            raise NotFoundError(f"no participant with id {participant_id}")
        t = s.get(schema.Team, p.team_id)
        assert t is not None
        return Account(p.id, p.name, t.id, t.name, bool(t.outside_data))


def list_teams(project: Project) -> list[tuple[str, bool, int]]:
    """(team, outside data, number of accounts) for every team."""
    from sqlalchemy import func

    with project.session() as s:
        rows = s.execute(
            select(schema.Team.name, schema.Team.outside_data, func.count(schema.Participant.id))
            .outerjoin(schema.Participant, schema.Participant.team_id == schema.Team.id)
            .group_by(schema.Team.id, schema.Team.name, schema.Team.outside_data)
            .order_by(schema.Team.name)
        )
        return [(name, bool(od), int(n)) for name, od, n in rows]
