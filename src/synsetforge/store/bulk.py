"""Bulk writes that are safe to repeat: INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL.

Reruns after a crash insert the same rows again; conflicts on the natural keys make that a no-op, so long
jobs can be restarted blindly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert `rows`, silently skipping those that collide on the unique columns `keys`."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    else:  # pragma: no cover - only the two supported backends reach here
        raise NotImplementedError(dialect)
    session.execute(stmt, list(rows))
