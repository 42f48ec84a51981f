"""Assignment under concurrent requests: no image is handed out more often than it needs votes, no worker
votes twice on an image, one worker's parallel requests share one task. Threads against the service on
SQLite and PostgreSQL, and parallel HTTP clients against a real loopback server on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app
from synsetforge.web.server import ThreadedServer

SYNSETS = ["n13878634", "n13879320", "n13883346"]


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Iterator[Project]:
    with Project.init(tmp_path / "p", db=db_url) as p:
        p.add_synsets(SYNSETS)
        add_synthetic_candidates(p, SYNSETS, 60, render=False)
        yield p


def vote_counts(p: Project) -> tuple[Counter[int], list[tuple[int, int]], int]:
    v = schema.Vote
    with p.session() as s:
        pairs = [(int(c), int(w)) for c, w in s.execute(select(v.candidate_id, v.worker_id))]
        n_candidates = int(s.scalar(select(func.count()).select_from(schema.Candidate)) or 0)
    return Counter(c for c, _ in pairs), pairs, n_candidates


def run_parallel(n: int, fn: Callable[[int], int]) -> list[int]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, range(n)))


def test_parallel_workers_never_over_assign(project: Project) -> None:
    votes_needed = 3
    settings = CrowdSettings(grid_size=10, gold_per_task=0, method="fixed", fixed_votes=votes_needed)
    svc = CrowdService(project, settings)
    ids = [svc.invite(f"w{i}").worker_id for i in range(12)]
    start = threading.Barrier(len(ids))

    def work(i: int) -> int:
        start.wait()
        done = idle = 0
        while idle < 3:  # like a person, look again a few times before leaving
            view = svc.next_task(ids[i])
            if view is None:
                idle += 1
                time.sleep(0.1)
                continue
            svc.submit(ids[i], view.task_id, view.items[::2])
            done, idle = done + 1, 0
        return done

    tasks = run_parallel(len(ids), work)
    per_image, pairs, n_candidates = vote_counts(project)
    assert sum(tasks) > 0
    assert len(pairs) == len(set(pairs))  # never two votes by one worker on one image
    assert len(per_image) == n_candidates  # every image got its votes...
    assert set(per_image.values()) == {votes_needed}  # ...and not one more: no double assignment


def test_one_workers_parallel_requests_share_one_task(project: Project) -> None:
    svc = CrowdService(project, CrowdSettings(grid_size=10, gold_per_task=0))
    worker = svc.invite().worker_id
    start = threading.Barrier(8)

    def ask(_: int) -> int:
        start.wait()
        view = svc.next_task(worker)
        assert view is not None
        return view.task_id

    assert len(set(run_parallel(8, ask))) == 1
    with project.session() as s:
        assert s.scalar(select(func.count()).select_from(schema.Task)) == 1


@pytest.mark.postgres
@pytest.mark.slow
def test_parallel_http_clients_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    with Project.init(tmp_path / "p", db=pg_url) as p:
        p.add_synsets(SYNSETS)
        add_synthetic_candidates(p, SYNSETS, 50, render=False)
        settings = CrowdSettings(grid_size=12, gold_per_task=0, method="fixed", fixed_votes=2)
        app = create_app(p, settings)
        admin = app.state.service.create_token()
        with ThreadedServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            tokens = [
                http.post(
                    "/api/v1/admin/workers",
                    json={"name": f"c{i}"},
                    headers={"Authorization": f"Bearer {admin}"},
                ).json()["token"]
                for i in range(10)
            ]
            start = threading.Barrier(len(tokens))
            acknowledged: list[list[tuple[int, int]]] = [[] for _ in tokens]

            def client(i: int) -> int:
                auth = {"Authorization": f"Bearer {tokens[i]}"}
                me = http.get("/api/v1/me", headers=auth).json()["worker_id"]
                start.wait()
                n = idle = 0
                while idle < 3:
                    task = http.get("/api/v1/task", headers=auth).json()["task"]
                    if task is None:
                        idle += 1
                        time.sleep(0.1)
                        continue
                    idle = 0
                    items = [it["candidate_id"] for it in task["items"]]
                    r = http.post(
                        f"/api/v1/tasks/{task['task_id']}/submit", json={"yes": items[:1]}, headers=auth
                    )
                    assert r.status_code == 200, r.text
                    acknowledged[i].extend((c, me) for c in items)
                    n += 1
                return n

            assert sum(run_parallel(len(tokens), client)) > 0
        per_image, pairs, n_candidates = vote_counts(p)
        acked = [pair for chunk in acknowledged for pair in chunk]
        assert sorted(acked) == sorted(pairs)  # every acknowledged vote stored, exactly once
        assert set(per_image.values()) == {2} and len(per_image) == n_candidates
