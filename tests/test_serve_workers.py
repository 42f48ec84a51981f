"""`synsetforge serve --workers N`: N processes on one port sharing the project through PostgreSQL; on
SQLite (one writer) the option is refused with a one-line message.

The PostgreSQL test starts the real command as a subprocess, drives tasks over fresh connections until
both processes have answered submissions (each says which it is at the admin-only /api/v1/admin/server),
and checks every acknowledged vote is stored exactly once. The server is stopped in `finally`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.service import CrowdService
from synsetforge.store import Project, schema
from synsetforge.web.server import SERVER_INFO_PATH, free_port

SYNSETS = ["n13878634", "n13879320"]


def start_serve(root: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "synsetforge", "serve", "--port", str(port), "-p", str(root), *extra]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def served_pg(tmp_path: Path, pg_url: str) -> Iterator[tuple[str, Project, list[tuple[int, str]], str]]:
    root = tmp_path / "p"
    with Project.init(root, db=pg_url) as p:
        p.add_synsets(SYNSETS)
        # enough work that both processes get submissions (with 60, work ran out after ~16 tasks,
        # sometimes all submitted through one process)
        add_synthetic_candidates(p, SYNSETS, 400, render=False)
        svc = CrowdService(p)
        workers = [(new.worker_id, new.token) for new in (svc.invite(f"w{i}") for i in range(8))]
        admin = svc.create_token("admin")
    port = free_port()
    proc = start_serve(root, port, "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(url + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve --workers 2 did not start"
            time.sleep(0.2)
        with Project.open(root) as p:
            yield url, p, workers, admin
    finally:
        stop(proc)


def server_info(url: str, admin: str) -> dict[str, Any]:
    # a fresh connection each time, so that either process may accept it
    r = httpx.get(url + SERVER_INFO_PATH, headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert r.status_code == 200, r.text
    info: dict[str, Any] = r.json()
    return info


@pytest.mark.postgres
def test_two_processes_share_the_work_and_store_each_vote_once(
    served_pg: tuple[str, Project, list[tuple[int, str]], str],
) -> None:
    url, project, workers, admin = served_pg
    assert httpx.get(url + SERVER_INFO_PATH, timeout=30).status_code == 401  # the server info: admins only
    worker = {"Authorization": f"Bearer {workers[0][1]}"}
    assert httpx.get(url + SERVER_INFO_PATH, headers=worker, timeout=30).status_code == 403
    acked: list[tuple[int, int]] = []
    served: dict[int, dict[str, int]] = {}
    deadline = time.monotonic() + 90
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        for worker_id, token in workers:
            auth = {"Authorization": f"Bearer {token}"}
            r = httpx.get(url + "/api/v1/task", headers=auth, timeout=30)
            assert r.status_code == 200, r.text
            task = r.json()["task"]
            if task is None:
                continue
            items = [int(it["candidate_id"]) for it in task["items"]]
            r = httpx.post(
                f"{url}/api/v1/tasks/{task['task_id']}/submit",
                json={"yes": items[::2]},
                headers=auth,
                timeout=30,
            )
            assert r.status_code == 200, r.text
            acked.extend((c, worker_id) for c in items)
        for _ in range(20):
            info = server_info(url, admin)
            assert info["processes"] == 2 and info["backend"] == "postgresql"
            served[int(info["pid"])] = info["served"]
        if len(served) == 2 and all(s["submit"] > 0 for s in served.values()):
            break
    assert len(served) == 2, f"only one process answered in {rounds} rounds"
    assert all(s["submit"] > 0 for s in served.values()), served
    assert sum(s["submit"] for s in served.values()) <= rounds * len(workers)
    with project.session() as s:
        stored = Counter(
            (int(c), int(w)) for c, w in s.execute(select(schema.Vote.candidate_id, schema.Vote.worker_id))
        )
    assert acked and len(set(acked)) == len(acked)
    assert stored == Counter(acked)  # every acknowledged vote exactly once, nothing else


def test_sqlite_refuses_more_than_one_process(tmp_path: Path) -> None:
    root = tmp_path / "p"
    Project.init(root).close()
    proc = start_serve(root, free_port(), "--workers", "2")
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "SQLite" in lines[0] and "one writer" in lines[0] and "--workers 2" in lines[0]
    assert "serving" not in out


@pytest.mark.postgres
def test_two_processes_creating_a_synsets_live_row_at_once_both_get_it(pg_url: str, tmp_path: Path) -> None:
    """The start-up race behind a `serve --workers 2` that stopped itself: both processes found a new
    project's synset row missing; the second insert raised UniqueViolation, its app failed to start and
    uvicorn stopped the whole server. Now the second waits for the first and locks the row it made."""
    import threading

    from synsetforge.crowd.tallies import lock_synset

    with Project.init(tmp_path / "p", db=pg_url) as p:
        p.add_synsets(SYNSETS[:1])
        outcome: list[object] = []
        with p.session() as first:
            made = lock_synset(first, SYNSETS[0])  # inserted, not committed yet

            def second() -> None:
                try:
                    with p.session() as s:
                        outcome.append(lock_synset(s, SYNSETS[0]).n_votes)
                except Exception as exc:  # the failure this test is about
                    outcome.append(exc)

            thread = threading.Thread(target=second)
            thread.start()
            time.sleep(0.5)  # the second now waits on the first's uncommitted row
            assert thread.is_alive() and not outcome
            made.n_votes = 7
        thread.join(10)
        assert outcome == [7]
        with p.session() as s:
            assert s.scalar(select(func.count()).select_from(schema.CrowdSynset)) == 1
