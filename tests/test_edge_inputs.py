"""The web app and the CLI accept and refuse the same input on SQLite and PostgreSQL, checked where it
enters: ids that cannot exist (outside 1..2**31-1) and NUL characters are a 422 naming what is wrong (a
usage error in the CLI), never a 500 or a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from _release_fixtures import build_release_project
from synsetforge.crowd.tokens import csrf_token
from synsetforge.limits import MAX_ROW_ID
from synsetforge.releases.release import create_release
from synsetforge.releases.splits import SplitSpec
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app
from synsetforge.web.auth import ADMIN_COOKIE

TOO_BIG = [MAX_ROW_ID + 1, 2**63, 99999999999999999999999]


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Iterator[tuple[Project, TestClient, str]]:
    project, _ = build_release_project(tmp_path / "p", db_url, per_synset=3)
    with project:
        create_release(project, "v1", split=SplitSpec(val=1, test=0), seed=3)
        app = create_app(project)
        admin = app.state.service.create_token("admin")
        with TestClient(app) as client:
            yield project, client, admin


def workers(project: Project) -> int:
    with project.session() as s:
        return int(s.scalar(select(func.count()).select_from(schema.Worker)) or 0)


def test_ids_that_cannot_exist_are_422_on_both_databases(site: tuple[Project, TestClient, str]) -> None:
    _, client, admin = site
    bearer = {"Authorization": f"Bearer {admin}"}
    routes = [
        ("get", "/explore/v1/image/{}", "image_id", {}),
        ("get", "/explore/v1/blob/{}", "image_id", {}),
        ("get", "/img/{}", "candidate_id", {}),
        ("post", "/api/v1/admin/workers/{}/block", "worker_id", {"json": {}}),
        ("post", "/api/v1/admin/workers/{}/unblock", "worker_id", {}),
    ]
    for method, path, name, kw in routes:
        for bad in [*TOO_BIG, 0, -1]:
            r = getattr(client, method)(path.format(bad), headers=bearer, **kw)
            assert r.status_code == 422, (path, bad, r.status_code, r.text)
            assert r.json()["detail"][0]["loc"] == ["path", name]
        # the largest possible id is a plain "not found" on both databases
        assert getattr(client, method)(path.format(MAX_ROW_ID), headers=bearer, **kw).status_code == 404
    # worker pages and the challenge API follow the same rule
    assert client.get(f"/work/done/{2**63}").status_code == 422
    assert client.get(f"/api/challenges/none/submissions/{2**63}").status_code in (401, 422)


def test_nul_characters_are_refused_on_both_databases(site: tuple[Project, TestClient, str]) -> None:
    project, client, admin = site
    bearer = {"Authorization": f"Bearer {admin}"}
    before = workers(project)
    for path in [
        "/explore/v1%00",
        "/explore/v1/synset/n01440764%00",
        "/explore?release=v1%00",
        "/explore/v1/search?q=tench%00",
        "/api/v1/admin/synsets/a%00b/images",
        "/challenges/x%00",
    ]:
        r = client.get(path, headers=bearer)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert r.json()["detail"][0]["msg"] == "NUL characters are not allowed"
    r = client.post("/api/v1/admin/workers", headers=bearer, json={"name": "ann\x00"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]
    worker = client.post("/api/v1/admin/workers", headers=bearer, json={"name": "bob"}).json()["worker_id"]
    r = client.post(f"/api/v1/admin/workers/{worker}/block", headers=bearer, json={"reason": "x\x00y"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "reason"]
    # the admin pages' forms too (the same refusal whatever the database)
    client.cookies.set(ADMIN_COOKIE, admin)
    form = {"csrf": csrf_token(admin, "admin"), "name": "eve\x00"}
    r = client.post("/admin/workers/invite", data=form, follow_redirects=False)
    assert r.status_code == 422 and "NUL" in r.text
    assert workers(project) == before + 1  # only bob


def test_cli_worker_ids_outside_the_range_are_refused_alike(tmp_path: Path, db_url: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "SYNSETFORGE_PROJECT"}
        command = [sys.executable, "-m", "synsetforge", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    root = str(tmp_path / "p")
    assert run("init", root, "--db", db_url).returncode == 0
    for bad in (str(MAX_ROW_ID + 1), str(2**63), "0"):
        proc = run("workers", "block", bad, "-p", root)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "Invalid value for 'worker_id'" in proc.stderr
    proc = run("workers", "block", str(MAX_ROW_ID), "-p", root)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: no worker with id {MAX_ROW_ID}"
