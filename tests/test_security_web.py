"""Security of the web app: nothing without a token, no gold answers in anything a worker receives, no
access to another worker's tasks or the admin API, HTML escaped, bad payloads refused with 4xx and no
change, tokens stored only as hashes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from synsetforge.crowd.gold import gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.crowd.tokens import hash_token
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app

SQUARE = "n13878634"
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@dataclass
class Env:
    project: Project
    client: TestClient
    admin: str
    ann: str
    bob: str

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with Project.init(tmp_path / "p") as p:
        p.add_synsets([SQUARE])
        add_synthetic_candidates(p, [SQUARE], 40, render=False)
        gold_from_ground_truth(p, per_synset=8)
        app = create_app(
            p, CrowdSettings(grid_size=12, gold_per_task=4, block_min_gold=50, max_body_bytes=4096)
        )
        svc = app.state.service
        admin = svc.create_token("admin")
        ann, bob = svc.invite("ann").token, svc.invite("bob").token
        with TestClient(app) as client:
            yield Env(p, client, admin, ann, bob)


def vote_count(p: Project) -> int:
    with p.session() as s:
        return int(s.scalar(select(func.count()).select_from(schema.Vote)) or 0)


def test_without_a_token_only_the_landing_page_answers(env: Env) -> None:
    c = env.client
    assert c.get("/").status_code == 200
    assert c.get("/static/app.css").status_code == 200
    for path in [
        "/api/v1/task",
        "/api/v1/me",
        "/api/v1/admin/progress",
        "/api/v1/admin/workers",
        "/api/v1/openapi.json",
        "/img/1",
    ]:
        assert c.get(path).status_code == 401, path
    assert c.post("/api/v1/tasks/1/submit", json={"yes": []}).status_code == 401
    assert c.get("/work").status_code == 401
    assert c.get("/admin", follow_redirects=False).status_code == 303  # to the login form
    assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404
    assert c.get("/api/v1/task", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert c.get("/invite/not-a-token").status_code == 403
    assert vote_count(env.project) == 0


def test_workers_never_receive_gold_answers(env: Env) -> None:
    c = env.client
    with env.project.session() as s:
        gold_ids = set(s.scalars(select(schema.Gold.candidate_id)))
    body = c.get("/api/v1/task", headers=env.auth(env.ann)).json()
    task = body["task"]
    ids = [it["candidate_id"] for it in task["items"]]
    assert gold_ids & set(ids), "the task should contain gold images"
    text = str(body).lower()
    assert "gold" not in text and "answer" not in text and "truth" not in text
    assert all(set(it) == {"candidate_id", "image_url"} for it in task["items"])  # gold items look the same
    page = c.get(f"/invite/{env.ann}", follow_redirects=True).text.lower()
    assert "gold" not in page and "is_gold" not in page and "truth" not in page
    tiles = re.findall(r'<label class="tile"[^>]*>.*?</label>', page, flags=re.S)
    assert len(tiles) == len(ids) and len({re.sub(r"\d+", "N", t) for t in tiles}) == 1  # identical markup
    result = c.post(
        f"/api/v1/tasks/{task['task_id']}/submit", json={"yes": ids}, headers=env.auth(env.ann)
    ).json()
    assert set(result) == {"task_id", "votes", "completion_code", "blocked", "tasks_done"}
    me = c.get("/api/v1/me", headers=env.auth(env.ann)).json()
    assert "gold" not in str(me).lower()


def test_a_worker_cannot_touch_another_workers_task_or_images(env: Env) -> None:
    c = env.client
    task = c.get("/api/v1/task", headers=env.auth(env.ann)).json()["task"]
    first = task["items"][0]["candidate_id"]
    assert c.get(f"/img/{first}", headers=env.auth(env.ann)).status_code == 200
    assert c.get(f"/img/{first}", headers=env.auth(env.bob)).status_code == 404
    r = c.post(f"/api/v1/tasks/{task['task_id']}/submit", json={"yes": [first]}, headers=env.auth(env.bob))
    assert r.status_code == 404
    assert vote_count(env.project) == 0
    for path in [
        "/api/v1/admin/progress",
        "/api/v1/admin/workers",
        "/api/v1/admin/export/votes.csv",
        f"/api/v1/admin/synsets/{SQUARE}/images",
    ]:
        assert c.get(path, headers=env.auth(env.ann)).status_code == 403, path
    assert c.post("/api/v1/admin/workers", json={"name": "x"}, headers=env.auth(env.ann)).status_code == 403
    c.cookies.set("sf_admin", env.ann)  # a worker token in the admin cookie is not an admin
    assert c.get("/admin", follow_redirects=False).status_code == 303
    c.cookies.clear()
    assert c.get("/api/v1/task", headers=env.auth(env.admin)).status_code == 403  # admins are not workers


def test_html_in_glosses_and_names_is_escaped(env: Env) -> None:
    with env.project.session() as s:
        s.execute(
            update(schema.Synset)
            .where(schema.Synset.id == SQUARE)
            .values(gloss=EVIL, lemmas=[EVIL, "b<i>old"])
        )
    c = env.client
    page = c.get(f"/invite/{env.ann}", follow_redirects=True).text
    assert EVIL not in page and "<script>alert" not in page and "<i>old" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    c.cookies.clear()
    login = re.search(r'name="csrf" value="([^"]+)"', c.get("/admin/login").text)
    assert login is not None
    c.post("/admin/login", data={"token": env.admin, "csrf": login.group(1)})
    for path in ["/admin", f"/admin/synsets/{SQUARE}"]:
        html = c.get(path).text
        assert "<script>alert" not in html, path
    c.post("/api/v1/admin/workers", json={"name": EVIL}, headers=env.auth(env.admin))
    html = c.get("/admin/workers").text
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "script-src 'self'" in c.get("/").headers["content-security-policy"]


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b'{"yes": "all"}',
        b'{"yes": ["1"]}',
        b'{"yes": [true]}',
        b'{"yes": [1.5]}',
        b'{"yes": [], "is_gold": true}',
        b"[]",
    ],
)
def test_malformed_vote_payloads_are_4xx_and_change_nothing(env: Env, payload: bytes) -> None:
    c = env.client
    task = c.get("/api/v1/task", headers=env.auth(env.ann)).json()["task"]
    headers = {**env.auth(env.ann), "content-type": "application/json"}
    r = c.post(f"/api/v1/tasks/{task['task_id']}/submit", content=payload, headers=headers)
    assert 400 <= r.status_code < 500, (payload, r.status_code)
    assert vote_count(env.project) == 0
    ok = c.post(f"/api/v1/tasks/{task['task_id']}/submit", json={"yes": []}, headers=env.auth(env.ann))
    assert ok.status_code == 200  # the task was untouched and can still be answered


def test_oversized_and_foreign_answers_are_refused(env: Env) -> None:
    c = env.client
    task = c.get("/api/v1/task", headers=env.auth(env.ann)).json()["task"]
    url = f"/api/v1/tasks/{task['task_id']}/submit"
    big = c.post(url, json={"yes": list(range(5000))}, headers=env.auth(env.ann))
    assert big.status_code == 413
    chunked = c.post(
        url,
        content=iter([b'{"yes": [', b"1," * 3000, b"1]}"]),
        headers={**env.auth(env.ann), "content-type": "application/json"},
    )
    assert chunked.status_code == 413
    foreign = c.post(url, json={"yes": [10**9]}, headers=env.auth(env.ann))
    assert foreign.status_code == 422 and "not in task" in foreign.json()["detail"]
    assert vote_count(env.project) == 0
    # the HTML form path: malformed values and a missing CSRF token change nothing either
    c.get(f"/invite/{env.ann}")
    assert c.post(f"/work/{task['task_id']}", data={"yes": ["abc"], "csrf": "x"}).status_code == 403
    page = c.get("/work").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf is not None
    assert (
        c.post(f"/work/{task['task_id']}", data={"yes": ["1; drop"], "csrf": csrf.group(1)}).status_code
        == 400
    )
    assert vote_count(env.project) == 0


def test_tokens_are_stored_only_as_hashes(env: Env) -> None:
    with env.project.session() as s:
        stored = set(s.scalars(select(schema.Worker.token_hash))) | set(
            s.scalars(select(schema.ApiToken.token_hash))
        )
    for token in (env.admin, env.ann, env.bob):
        assert token not in stored and hash_token(token) in stored
    for f in env.project.root.glob("project.db*"):  # the database and its WAL
        data = f.read_bytes()
        assert env.ann.encode() not in data and env.admin.encode() not in data


def test_openapi_needs_a_token_and_describes_the_api(env: Env) -> None:
    spec = env.client.get("/api/v1/openapi.json", headers=env.auth(env.ann)).json()
    assert "/api/v1/tasks/{task_id}/submit" in spec["paths"] and "/api/v1/admin/progress" in spec["paths"]
    assert not any(p.startswith("/admin") or p.startswith("/work") for p in spec["paths"])
