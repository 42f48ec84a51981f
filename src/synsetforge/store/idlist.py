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

    def arrays(self, prefix: str) -> Any:
        """The PostgreSQL statement with each parameter bound as `prefix` + its name."""
        raise NotImplementedError

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
        self.table = table
        self.params = tuple(columns)
        self._plain = insert(table)
        self._arrays = self.arrays("")

    def arrays(self, prefix: str) -> Any:
        rows = unnest_arrays(self.table, {c: c for c in self.params}, prefix)
        return insert(self.table).from_select(
            [self.table.c[c] for c in self.params], select(*(rows.c[c] for c in self.params))
        )


class BulkUpdate(_RowsStatement):
    """Rows of `table` updated by key, one statement per call: `values` maps each parameter name of the
    rows to the column it sets, `key` (parameter, column) finds the row. PostgreSQL: `UPDATE ... FROM
    unnest(...)` with one array per parameter; SQLite: an executemany of `UPDATE ... WHERE key = ?`."""

    def __init__(self, table: Table, key: tuple[str, str], values: dict[str, str]) -> None:
        self.table, self.key, self.values = table, key, values
        self.params = (key[0], *values)
        self._plain = (
            update(table)
            .where(table.c[key[1]] == bindparam(key[0]))
            .values({column: bindparam(param) for param, column in values.items()})
        )
        self._arrays = self.arrays("")

    def arrays(self, prefix: str) -> Any:
        rows = unnest_arrays(self.table, {self.key[0]: self.key[1], **self.values}, prefix)
        return (
            update(self.table)
            .where(self.table.c[self.key[1]] == rows.c[self.key[0]])
            .values({column: rows.c[param] for param, column in self.values.items()})
        )


class Together:
    """Row writes that go together (`BulkInsert`, `BulkUpdate`) as one statement on PostgreSQL: the first
    writes, the rest ride along as data-modifying CTEs (`WITH w1 AS (UPDATE ...) INSERT ...`), an empty
    list as an empty array. SQLite runs each on its own (no round trips there).

    Why: inside a write gate every round trip to PostgreSQL delays the writers queued behind it (about
    1 ms each under load). The parts must touch different rows and not read what another writes: they
    all see the one snapshot the statement starts with. Each part's parameters are bound under a prefix
    of their own (`p0_`, `p1_`, ...): SQLAlchemy fills an UPDATE's SET clause from any execution
    parameter named like one of its table's columns, so a part's `worker_id` must not reach another's.
    Column defaults computed in Python (`onupdate`) are not reliably filled in for a part written as a CTE
    (`candidates.updated_at` came out NULL in a three-part statement): such columns must be among the
    part's values.
    """

    def __init__(self, *parts: _RowsStatement) -> None:
        self.parts = parts
        first, *rest = (part.arrays(f"p{i}_") for i, part in enumerate(parts))
        self._arrays = first.add_cte(*(s.cte(f"w{i}") for i, s in enumerate(rest, 1)))

    def run(self, conn: Connection, *rows: Sequence[dict[str, Any]]) -> None:
        if len(rows) != len(self.parts):
            raise ValueError(f"{len(self.parts)} row lists expected, {len(rows)} given")
        if conn.dialect.name != "postgresql":
            for part, some in zip(self.parts, rows, strict=True):
                part.run(conn, some)
            return
        if not any(rows):
            return
        args = {
            f"p{i}_{p}": [r[p] for r in some]
            for i, (part, some) in enumerate(zip(self.parts, rows, strict=True))
            for p in part.params
        }
        conn.execute(self._arrays, args)


def unnest_arrays(table: Table, params: dict[str, str], prefix: str = "") -> Any:
    """`unnest(:p1, :p2, ...) AS anon(p1, p2, ...)`, each parameter an array of its column's type, bound
    as `prefix` + its name."""
    arrays = [bindparam(prefix + p, type_=ARRAY(table.c[column].type)) for p, column in params.items()]
    return func.unnest(*arrays).table_valued(*params).render_derived()


def table_of(model: Any) -> Table:
    """The Core table of an ORM model."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
