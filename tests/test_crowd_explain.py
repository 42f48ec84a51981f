"""The plans of next-task's and submit's queries use indexes: no statement reads all of `candidates`,
`votes`, `crowd_images`, `tasks` or `task_items` (issue 10 item 3), on SQLite and PostgreSQL.

Every statement the two calls send is captured and explained with its own parameters. PostgreSQL is asked
with `enable_seqscan = off`, so a sequential scan in the plan means no index can serve the query (on a
table this small the planner would otherwise prefer a scan whatever the indexes)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from synsetforge.crowd.drive import load_truth
from synsetforge.crowd.gold import gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import Project

SYNSETS = ["n13878634", "n13879320"]
BIG = ("candidates", "votes", "crowd_images", "tasks", "task_items")


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Iterator[Project]:
    with Project.init(tmp_path / "p", db=db_url) as p:
        p.add_synsets(SYNSETS)
        add_synthetic_candidates(p, SYNSETS, 60, precision=0.3, render=False)
        gold_from_ground_truth(p, per_synset=6, seed=0)
        yield p


def _capture(p: Project) -> tuple[list[tuple[str, Any]], Any]:
    seen: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # a server's background runner (polling the job queue) is not part of the request
        if not executemany and statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
            seen.append((statement, params))

    event.listen(p.engine, "before_cursor_execute", before)
    return seen, before


def _full_scans(p: Project, statements: list[tuple[str, Any]]) -> list[str]:
    bad = []
    with p.engine.connect() as conn:
        if p.dialect == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, params in statements:
            if p.dialect == "sqlite":
                plan = [str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)]
                scans = [line for line in plan if re.match(rf"SCAN ({'|'.join(BIG)})\b", line)]
                # a search bounded by the synset alone reads the whole synset: only the initial-subset
                # prefix (ORDER BY hash ... LIMIT) may do that
                if "ORDER BY crowd_images.hash" not in statement:
                    scans += [
                        line
                        for line in plan
                        if re.match(r"SEARCH (crowd_images|candidates) .*\(synset_id=\?\)$", line)
                    ]
            else:
                plan = [str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + statement, params)]
                scans = [line for line in plan if re.search(rf"Seq Scan on ({'|'.join(BIG)})\b", line)]
            bad += [f"{line}  <-  {' '.join(statement.split())[:300]}" for line in scans]
        conn.rollback()
    return bad


def test_next_task_and_submit_queries_use_indexes(project: Project) -> None:
    settings = CrowdSettings(grid_size=12, gold_per_task=2, initial_min=8, initial_each=1, initial_votes=3)
    svc = CrowdService(project, settings, seed=1)
    truth = load_truth(project)
    workers = [svc.invite(f"w{i}").worker_id for i in range(6)]
    for _ in range(3):  # past the initial subset: a table, open cells, decided images
        for w in workers:
            view = svc.next_task(w)
            if view is not None:
                svc.submit(w, view.task_id, [c for c in view.items if truth[c]])
    with project.session() as s:
        assert s.execute(text("SELECT count(*) FROM crowd_synsets WHERE expected_votes IS NOT NULL")).scalar()
    fresh = svc.invite("measured").worker_id
    svc.next_task(fresh)  # start-up checks out of the way
    seen, hook = _capture(project)
    try:
        view = svc.next_task(workers[1])
        assert view is not None
        n_next = len(seen)
        svc.submit(workers[1], view.task_id, [c for c in view.items if truth[c]])
    finally:
        event.remove(project.engine, "before_cursor_execute", hook)
    assert n_next >= 5 and len(seen) > n_next  # both calls were captured
    assert _full_scans(project, seen) == []
    # the check itself sees a full scan where there is one (no index on votes.weight)
    assert _full_scans(project, [("SELECT count(*) FROM votes WHERE weight > 0.5", ())])
    assert len(seen) <= 32  # statements of one next-task plus one submit, nothing remembered

    # a server (background=True) remembers filled cells, gold and synset words for a moment: fewer
    server = CrowdService(project, settings, seed=1, background=True)
    try:
        for w in workers[2:4]:  # warms what it remembers
            view = server.next_task(w)
            if view is not None:
                server.submit(w, view.task_id, [c for c in view.items if truth[c]])
        for w in [*workers[4:], *workers[:2], fresh]:  # the first worker the server has work for
            seen, hook = _capture(project)
            try:
                view = server.next_task(w)
                if view is not None:
                    server.submit(w, view.task_id, [c for c in view.items if truth[c]])
                    break
            finally:
                event.remove(project.engine, "before_cursor_execute", hook)
        assert view is not None
    finally:
        server.close()
    assert _full_scans(project, seen) == []
    assert len(seen) <= 20, [" ".join(st.split())[:120] for st, _ in seen]
