"""Statements that take a list of ids, built once per dialect.

Why: an expanding `IN (...)` renders a new SQL string for every list length. On PostgreSQL that defeats
psycopg's query cache and its automatic prepared statements (each execution re-parsed the query in
Python and planned it on the server: about a sixth of a loaded server's CPU). `= ANY(:ids)` with one
array parameter is one string whatever the list, and PostgreSQL answers it from the same indexes.
SQLite has no arrays: it keeps the expanding form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

DIALECTS = ("sqlite", "postgresql")


def ids_in(column: Any, dialect: str, name: str = "ids") -> Any:
    """`column` is one of the list bound as `name` (a Python list of ints at execution)."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(BigInteger)))
    return column.in_(bindparam(name, expanding=True))


class PerDialect:
    """One prebuilt statement per dialect; `of(conn)` picks the connection's."""

    def __init__(self, build: Callable[[str], Any]) -> None:
        self._by = {d: build(d) for d in DIALECTS}

    def of(self, conn: Connection) -> Any:
        return self._by.get(conn.dialect.name, self._by["sqlite"])
