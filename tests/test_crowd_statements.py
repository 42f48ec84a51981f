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
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError

from synsetforge.crowd import assign, record, tallies
from synsetforge.crowd import service as service_module
from synsetforge.crowd.assign import as_utc
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


def test_a_submit_writes_votes_task_and_gold_score_in_one_statement_on_postgresql(
    campaign: tuple[Project, CrowdService, list[int]],
) -> None:
    p, svc, _workers = campaign
    w = svc.invite("new").worker_id  # on probation: the task carries gold
    view = svc.next_task(w)
    assert view is not None
    with p.session() as s:
        before = s.get(schema.Worker, w)
        assert before is not None
        gold_before = (before.gold_total, before.gold_correct)
        answers = dict(
            s.execute(
                select(schema.TaskItem.candidate_id, schema.Gold.answer)
                .join(schema.Gold, schema.Gold.candidate_id == schema.TaskItem.candidate_id)
                .where(schema.TaskItem.task_id == view.task_id, schema.TaskItem.is_gold.is_(True))
            ).all()
        )
        c = schema.Candidate
        scores = dict(s.execute(select(c.id, c.confidence).where(c.id.in_(view.items))).all())
    assert answers  # the task carries gold, so the worker's gold score moves
    yes = [c for c in view.items if c % 2 == 0]
    start = datetime.now(UTC)
    statements: list[str] = []

    def seen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(p.engine, "before_cursor_execute", seen)
    try:
        result = svc.submit(w, view.task_id, yes)
    finally:
        event.remove(p.engine, "before_cursor_execute", seen)
    with p.session() as s:
        task = s.get(schema.Task, view.task_id)
        after = s.get(schema.Worker, w)
        votes = dict(
            s.execute(
                select(schema.Vote.candidate_id, schema.Vote.label).where(schema.Vote.task_id == view.task_id)
            ).all()
        )
        rescored = s.execute(select(c.id, c.confidence, c.updated_at).where(c.id.in_(view.items))).all()
    moved = [(cid, at) for cid, conf, at in rescored if conf != scores[cid]]
    assert moved  # the votes moved some images' confidence: their rows say when
    assert all(as_utc(at) >= start for _, at in moved)
    assert task is not None and after is not None
    assert (task.status, task.completion_code) == (
        "submitted",
        result.completion_code,
    ) and task.submitted_at is not None
    right = sum((c in yes) == bool(a) for c, a in answers.items())
    assert (after.gold_total, after.gold_correct) == (gold_before[0] + len(answers), gold_before[1] + right)
    assert votes == {c: c in yes for c in view.items}
    inserts = [x for x in statements if "INSERT INTO votes" in x]
    alone = [x for x in statements if x.startswith(("UPDATE tasks SET status=", "UPDATE workers SET gold"))]
    if p.dialect == "postgresql":
        assert len(inserts) == 1 and "UPDATE tasks" in inserts[0] and "UPDATE workers" in inserts[0]
        assert not alone
        writes = [x for x in statements if "UPDATE crowd_images" in x]
        assert len(writes) == 1 and "UPDATE candidates" in writes[0]  # tallies and decisions together
    else:
        assert len(inserts) == 1 and len(alone) == 2
    assert not any("table_data" in x for x in statements)  # the parsed table answers needs_rebuild


def test_the_parsed_table_answers_needs_rebuild_as_the_stored_one(
    campaign: tuple[Project, CrowdService, list[int]],
) -> None:
    p, svc, _workers = campaign
    fp = tallies.settings_fingerprint(svc.settings)
    checked = 0
    with p.session() as s:
        for sid in SYNSETS:
            syn = tallies.lock_synset(s, sid)
            table = svc.stored.get(syn)
            if table is None:
                continue
            for fp_initial in (syn.fp_initial, "moved"):  # the initial subset moved since the table, or not
                syn.fp_initial = fp_initial
                assert tallies._table_initial_size(syn, table) == tallies._table_initial_size(syn)
                for size in (syn.initial_size, syn.initial_size + 1):
                    syn.initial_size = size
                    assert tallies.needs_rebuild(syn, svc.settings, fp, table) == tallies.needs_rebuild(
                        syn, svc.settings, fp
                    )
                    checked += 1
            s.expire(syn)  # the changes above were for the test only: not written
    assert checked >= 4  # both synsets have tables


@pytest.mark.postgres
def test_a_contended_assignment_waits_outside_the_write_gate(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Project.init(tmp_path / "p", db=pg_url) as p:
        p.add_synsets(SYNSETS)
        add_synthetic_candidates(p, SYNSETS, 60, precision=0.3, render=False)
        svc = CrowdService(p, CrowdSettings(grid_size=12, gold_per_task=0), seed=3)
        first, second = svc.invite("first").worker_id, svc.invite("second").worker_id
        pauses: list[tuple[float, bool]] = []

        def pause(seconds: float) -> None:  # the gate is free while the assignment waits
            pauses.append((seconds, svc._gate._free > 0 and not any(svc._gate._queues.values())))

        monkeypatch.setattr(service_module.time, "sleep", pause)
        other = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))
        try:
            # a writer holding the images' rows (a submit re-deciding them) does not stop an assignment
            other.execute("SELECT id FROM candidates FOR NO KEY UPDATE")
            assert svc.next_task(first) is not None and not pauses
            # another assignment's claims on every image do: nothing is handed out, after every try
            other.execute(f"SELECT pg_advisory_xact_lock({assign.ASSIGN_LOCKS}, id) FROM candidates")
            assert svc.next_task(second) is None
            with p.session() as s:  # and nothing was left behind by the tries
                assert not s.scalars(select(schema.Task.id).where(schema.Task.worker_id == second)).all()
        finally:
            other.rollback()
            other.close()
        assert len(pauses) == service_module.CONTENDED_RETRIES + 1
        assert all(free for _, free in pauses)
        view = svc.next_task(second)  # the claims gone, the worker gets a task
        assert view is not None and len(view.items) == 12
