"""Statements that take a list of ids or rows, built once per dialect.

Why: an expanding `IN (...)` renders a new SQL string for every list length. On PostgreSQL that defeats
psycopg's query cache and its automatic prepared statements (each execution re-parsed the query in
Python and planned it on the server: about a sixth of a loaded server's CPU). `= ANY(:ids)` with one
array parameter is one string whatever the list, and PostgreSQL answers it from the same indexes.
SQLite has no arrays: it keeps the expanding form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import BigInteger, Table, any_, bindparam, func, insert, select, update
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


class _RowsStatement:
    """A write of many rows as one statement per call: PostgreSQL binds one array per parameter
    (`_arrays`), SQLite runs an executemany (`_plain`)."""

    params: tuple[str, ...]
    _plain: Any
    _arrays: Any

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if conn.dialect.name == "postgresql":
            conn.execute(self._arrays, {p: [r[p] for r in rows] for p in self.params})
        else:
            conn.execute(self._plain, list(rows))


class BulkInsert(_RowsStatement):
    """Rows into `table`, one statement per call: PostgreSQL binds one array per column and inserts
    `SELECT * FROM unnest(...)`; SQLite runs an executemany.

    Why: psycopg runs an executemany as a pipeline of one statement per row, driven in Python (a
    24-vote submission and its 24 task items cost about a tenth of a loaded server's CPU there).
    """

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.params = tuple(columns)
        self._plain = insert(table)
        rows = unnest_arrays(table, {c: c for c in self.params})
        self._arrays = insert(table).from_select(
            [table.c[c] for c in self.params], select(*(rows.c[c] for c in self.params))
        )


class BulkUpdate(_RowsStatement):
    """Rows of `table` updated by key, one statement per call: `values` maps each parameter name of the
    rows to the column it sets, `key` (parameter, column) finds the row. PostgreSQL: `UPDATE ... FROM
    unnest(...)` with one array per parameter; SQLite: an executemany of `UPDATE ... WHERE key = ?`."""

    def __init__(self, table: Table, key: tuple[str, str], values: dict[str, str]) -> None:
        self.params = (key[0], *values)
        self._plain = (
            update(table)
            .where(table.c[key[1]] == bindparam(key[0]))
            .values({column: bindparam(param) for param, column in values.items()})
        )
        rows = unnest_arrays(table, {key[0]: key[1], **values})
        self._arrays = (
            update(table)
            .where(table.c[key[1]] == rows.c[key[0]])
            .values({column: rows.c[param] for param, column in values.items()})
        )


def unnest_arrays(table: Table, params: dict[str, str]) -> Any:
    """`unnest(:p1, :p2, ...) AS anon(p1, p2, ...)`, each parameter an array of its column's type."""
    arrays = [bindparam(p, type_=ARRAY(table.c[column].type)) for p, column in params.items()]
    return func.unnest(*arrays).table_valued(*params).render_derived()


def table_of(model: Any) -> Table:
    """The Core table of an ORM model."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
