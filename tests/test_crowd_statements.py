"""The request path's merged statements return what the simple queries they replace returned (issue 10:
PostgreSQL round trips), on SQLite and PostgreSQL.

Each merged statement is checked against a plain reference computed here: the cells read by one statement
against a per-cell read in Python, the open-cell skip scan against SELECT DISTINCT, held counts and the
worker's votes against a count over tasks, recount-with-rows against recount plus the rows, the decision
record read with the synset lock against `read_record`. Also: reads on PostgreSQL run without a
transaction, and an idle pooled connection that was cut is replaced before a request sees it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from synsetforge.crowd import assign, record, tallies
from synsetforge.crowd.drive import load_truth
from synsetforge.crowd.gold import gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import Project, schema
from synsetforge.store import project as project_module

SYNSETS = ["n13878634", "n13879320"]


@pytest.fixture
def campaign(tmp_path: Path, db_url: str) -> Iterator[tuple[Project, CrowdService, list[int]]]:
    """A project part-way through a campaign: a table, filled cells, decided images, open tasks."""
    with Project.init(tmp_path / "p", db=db_url) as p:
        p.add_synsets(SYNSETS)
        add_synthetic_candidates(p, SYNSETS, 150, precision=0.3, render=False)
        gold_from_ground_truth(p, per_synset=6, seed=0)
        settings = CrowdSettings(
            grid_size=12, gold_per_task=2, initial_min=8, initial_each=1, initial_votes=3
        )
        svc = CrowdService(p, settings, seed=3)
        truth = load_truth(p)
        rng = random.Random(5)
        workers = [svc.invite(f"w{i}").worker_id for i in range(12)]
        for round_ in range(5):
            for w in workers:
                view = svc.next_task(w)
                if view is None or (round_ == 4 and w % 3 == 0):
                    continue  # the last round leaves some tasks open
                svc.submit(w, view.task_id, [c for c in view.items if truth[c] != (rng.random() < 0.1)])
        yield p, svc, workers


def _cell_rows(p: Project, synset_id: str) -> dict[int, list[tuple[float, int]]]:
    with p.session() as s:
        ci = schema.CrowdImage
        rows = s.execute(
            select(ci.cell, ci.hash, ci.candidate_id).where(ci.synset_id == synset_id, ci.cell.is_not(None))
        ).all()
    out: dict[int, list[tuple[float, int]]] = {}
    for cell, h, cid in rows:
        out.setdefault(int(cell), []).append((float(h), int(cid)))
    return {cell: sorted(v) for cell, v in out.items()}


def test_cells_read_by_one_statement_equal_a_read_per_cell(
    campaign: tuple[Project, CrowdService, list[int]],
) -> None:
    p, _svc, _workers = campaign
    rng = random.Random(1)
    for sid in SYNSETS:
        by_cell = _cell_rows(p, sid)
        assert len(by_cell) >= 3  # the campaign filled several cells
        with p.session() as s:
            assert assign._scan_cells(s, sid) == set(by_cell)  # the skip scan finds exactly the open cells
            for _ in range(25):
                cells = rng.sample(sorted(by_cell), rng.randint(1, len(by_cell)))
                cells.append(9_999)  # a cell nobody is in
                start, limit = rng.random(), rng.randint(1, 60)
                expected: list[int] = []
                for cell in cells:  # the reference: cell after cell, from `start`, wrapping around
                    rows = by_cell.get(cell, [])
                    ordered = [cid for h, cid in rows if h >= start] + [cid for h, cid in rows if h < start]
                    expected += ordered[: limit - len(expected)]
                    if len(expected) >= limit:
                        break
                got = assign._fetch_cells(s, sid, cells[: assign.CELL_SLOTS], start, limit)
                assert [int(r.candidate_id) for r in got] == expected[: len(got)]
                if len(cells) <= assign.CELL_SLOTS:
                    assert len(got) == len(expected)
                assert all(int(r.cell) in cells for r in got)


def test_held_counts_and_the_workers_votes_equal_a_count_over_tasks(
    campaign: tuple[Project, CrowdService, list[int]],
) -> None:
    p, _svc, workers = campaign
    now = datetime.now(UTC)
    with p.session() as s:
        t, ti = schema.Task, schema.TaskItem
        open_items = s.execute(
            select(t.synset_id, ti.candidate_id)
            .join(ti, ti.task_id == t.id)
            .where(t.status == "open", ti.is_gold.is_(False))
        ).all()
        assert open_items  # the campaign left tasks open
        for sid in SYNSETS:
            ids = [
                int(c)
                for c in s.scalars(
                    select(schema.CrowdImage.candidate_id).where(schema.CrowdImage.synset_id == sid)
                )
            ]
            expected_held: dict[int, int] = {}
            for task_sid, cid in open_items:
                if task_sid == sid:
                    expected_held[int(cid)] = expected_held.get(int(cid), 0) + 1
            for w in workers[:4]:
                voted = {
                    int(c)
                    for c in s.scalars(select(schema.Vote.candidate_id).where(schema.Vote.worker_id == w))
                }
                held, mine = assign.taken(s, now, sid, w, ids)
                assert {k: v for k, v in held.items() if v} == expected_held
                assert mine == voted & set(ids)
                fresh = {int(r.candidate_id): r for r in s.connection().execute(
                    assign._FRESH.of(s.connection()), {"ids": ids, "sid": sid, "now": now, "wid": w}
                )}  # fmt: skip
                assert {k: int(r.held) for k, r in fresh.items() if r.held} == expected_held
                assert {k for k, r in fresh.items() if r.mine} == voted & set(ids)
            # a task past its deadline no longer holds its images
            later = now + timedelta(days=1)
            assert not any(assign.taken(s, later, sid, workers[0], ids)[0].values())


def test_recount_with_rows_equals_a_recount_and_the_rows(
    campaign: tuple[Project, CrowdService, list[int]],
) -> None:
    p, _svc, _workers = campaign
    with p.session() as s:
        ids = [int(c) for c in s.scalars(select(schema.CrowdImage.candidate_id).limit(80))]
        ids += [10**9]  # no such image: recounted (to nothing), no row
        fresh, rows = tallies.recount_rows(s, ids)
        plain = tallies.recount(s, ids)
        assert fresh == plain
        assert any(st.n_all for st in fresh.values())  # images with votes among them
        conn = s.connection()
        reference = {int(r[0]): tuple(r) for r in conn.execute(tallies._DECIDE_ROWS.of(conn), {"ids": ids})}
        assert {k: tuple(r) for k, r in rows.items()} == reference
        assert 10**9 not in rows


def test_the_record_read_with_the_synset_lock_is_the_record(
    campaign: tuple[Project, CrowdService, list[int]],
) -> None:
    p, _svc, _workers = campaign
    with p.session() as s:
        before = record.read_record(s)
        assert before is not None and before.by == record.BY_LIVE  # live serving recorded itself
        tallies.lock_synset(s, SYNSETS[0])
        assert record.read_record(s) == before  # what the lock statement read
        other = record.DecisionRecord("majority", {"ties": "reject"}, record.BY_AGGREGATE, record.now_iso())
        tallies.lock_synset(s, SYNSETS[1])
        record.write_record(s, other)
        again = record.read_record(s)  # not the value read with the lock before the write
        assert again is not None and again.method == "majority"
    with p.session() as s:
        assert record.read_record(s).method == "majority"  # type: ignore[union-attr]


def test_postgresql_reads_run_without_a_transaction(
    campaign: tuple[Project, CrowdService, list[int]],
) -> None:
    p, svc, _workers = campaign
    with svc.read() as s:
        assert s.execute(text("SELECT count(*) FROM candidates")).scalar()
        raw = s.connection().connection.dbapi_connection
        if p.dialect == "postgresql":
            assert raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # no BEGIN was sent
    with p.session() as s:  # writes still run in a transaction
        s.execute(text("SELECT 1"))
        raw = s.connection().connection.dbapi_connection
        if p.dialect == "postgresql":
            assert raw.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


@pytest.mark.postgres
def test_an_idle_connection_cut_by_the_server_is_replaced(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Project.init(tmp_path / "p", db=pg_url) as p:
        p.add_synsets(SYNSETS[:1])

        def cut_pooled_connection() -> None:
            with p.session() as s:
                pid = s.execute(text("SELECT pg_backend_pid()")).scalar()
            with psycopg.connect(pg_url.split("?")[0], autocommit=True) as admin:
                assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)

        # a connection idle past IDLE_PING_S is checked first, and a dead one replaced
        monkeypatch.setattr(project_module, "IDLE_PING_S", 0.0)
        cut_pooled_connection()
        with p.session() as s:
            assert s.execute(text("SELECT count(*) FROM synsets")).scalar() == 1
        # one used a moment ago is not: a cut there fails that one request, then the pool recovers
        monkeypatch.setattr(project_module, "IDLE_PING_S", 3600.0)
        cut_pooled_connection()
        with pytest.raises(OperationalError), p.session() as s:
            s.execute(text("SELECT count(*) FROM synsets")).scalar()
        with p.session() as s:
            assert s.execute(text("SELECT count(*) FROM synsets")).scalar() == 1
