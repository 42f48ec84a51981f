"""Statements over lists of ids and rows (`store.idlist`): the same rows on SQLite (expanding IN,
executemany) and PostgreSQL (one array per list or column), NULLs and long lists included."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    event,
    select,
)

from synsetforge.store import Project
from synsetforge.store.idlist import BulkInsert, BulkUpdate, PerDialect, Together, ids_in

META = MetaData()
PROBE = Table(
    "idlist_probe",
    META,
    Column("id", Integer, primary_key=True),
    Column("cid", BigInteger, unique=True),
    Column("yes", Boolean),
    Column("w", Float),
    Column("cell", Integer, nullable=True),
    Column("decision", String(20), nullable=True),
    Column("at", DateTime),
)
INSERT = BulkInsert(PROBE, ("cid", "yes", "w", "cell", "decision", "at"))
UPDATE = BulkUpdate(PROBE, ("_id", "cid"), {"_cell": "cell", "_decision": "decision", "w": "w"})
PICK = PerDialect(lambda d: select(PROBE.c.cid).where(ids_in(PROBE.c.cid, d)).order_by(PROBE.c.cid))


def test_rows_and_lists_round_trip_on_both_backends(tmp_path: Path, db_url: str) -> None:
    now = datetime.now(UTC)
    with Project.init(tmp_path / "p", db=db_url) as p:
        META.create_all(p.engine)
        with p.engine.begin() as conn:
            rows = [
                {
                    "cid": i,
                    "yes": i % 2 == 0,
                    "w": i / 4,
                    "cell": i if i % 3 == 0 else None,
                    "decision": None,
                    "at": now,
                }
                for i in range(1, 3001)
            ]
            INSERT.run(conn, rows)
            INSERT.run(conn, [])  # nothing to write: no statement, no error
            UPDATE.run(
                conn,
                [
                    {"_id": 2, "_cell": 7, "_decision": "accepted", "w": 9.5},
                    {"_id": 3, "_cell": None, "_decision": None, "w": 0.0},  # a NULL written over a value
                    {"_id": 4, "_cell": None, "_decision": "<b>rejected</b>", "w": 1.0},
                ],
            )
            UPDATE.run(conn, [{"_id": 5, "_cell": None, "_decision": None, "w": 2.0}])  # all-NULL arrays
            got = {r.cid: r for r in conn.execute(select(PROBE).where(PROBE.c.cid <= 6))}
            assert len(conn.execute(select(PROBE.c.id)).all()) == 3000
            picked = [int(x) for x in conn.execute(PICK.of(conn), {"ids": [6, 2, 2999, 5000]}).scalars()]
        META.drop_all(p.engine)
    assert picked == [2, 6, 2999]  # in the list and stored; 5000 is not stored
    assert (got[1].yes, got[1].w, got[1].cell, got[1].decision) == (False, 0.25, None, None)
    assert (got[2].cell, got[2].decision, got[2].w) == (7, "accepted", 9.5)
    assert (got[3].cell, got[3].decision, got[3].w) == (None, None, 0.0)
    assert (got[4].decision, got[4].w) == ("<b>rejected</b>", 1.0)
    assert (got[5].cell, got[5].w) == (None, 2.0)
    assert (got[6].cell, got[6].w, got[6].yes) == (6, 1.5, True)  # untouched by the updates


WEIGH = BulkUpdate(PROBE, ("_k", "cid"), {"_w": "w"})
BOTH = Together(INSERT, WEIGH)


def test_writes_together_are_one_statement_on_postgresql_and_the_same_rows_everywhere(
    tmp_path: Path, db_url: str
) -> None:
    now = datetime.now(UTC)
    row = {"yes": True, "w": 1.0, "cell": None, "decision": None, "at": now}
    statements: list[str] = []
    with Project.init(tmp_path / "p", db=db_url) as p:
        META.create_all(p.engine)
        with p.engine.begin() as conn:
            INSERT.run(conn, [{**row, "cid": i} for i in (1, 2, 3)])

            @event.listens_for(conn, "before_cursor_execute")
            def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
                statements.append(statement)

            BOTH.run(
                conn, [{**row, "cid": 4}, {**row, "cid": 5}], [{"_k": 1, "_w": 7.5}, {"_k": 3, "_w": 0.5}]
            )
            BOTH.run(conn, [], [{"_k": 2, "_w": 2.5}])  # one list empty: an empty array
            BOTH.run(conn, [], [])  # nothing to write: no statement
            event.remove(conn, "before_cursor_execute", count)
            got = {int(r.cid): float(r.w) for r in conn.execute(select(PROBE.c.cid, PROBE.c.w))}
        META.drop_all(p.engine)
    assert got == {1: 7.5, 2: 2.5, 3: 0.5, 4: 1.0, 5: 1.0}
    if db_url.startswith("postgresql"):
        assert len(statements) == 2 and all(s.lstrip().startswith("WITH w1 AS") for s in statements)
    else:
        assert len(statements) == 3  # an insert and an update, then an update (the empty insert is skipped)


def test_writes_together_refuse_a_missing_row_list() -> None:
    with pytest.raises(ValueError, match="2 row lists expected, 1 given"):
        BOTH.run(None, [])  # type: ignore[arg-type]
