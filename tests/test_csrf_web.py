"""Cross-site request forgery: a foreign page can make a visitor's browser post any of our forms, so every
state-changing form (admin and challenge login and logout, the task form, the admin buttons, the upload
form) needs a token that page cannot know, and a post a browser marks as cross-site is refused outright.
A refused post changes nothing and signs nobody in; the real forms keep working."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from _challenge_fixtures import build_world, make_challenge, team_with_accounts
from synsetforge.crowd.gold import gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app
from synsetforge.web.challenge_routes import COOKIE as PARTICIPANT_COOKIE
from synsetforge.web.csrf import LOGIN_COOKIE, cross_site

SQUARE = "n13878634"
EVIL = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str, action: str | None = None) -> str:
    """The csrf field of the form posting to `action` (default: the first form with one)."""
    if action is not None:
        form = re.search(rf'<form[^>]*action="{re.escape(action)}".*?</form>', html, flags=re.S)
        assert form is not None, f"no form posting to {action}"
        html = form.group(0)
    found = CSRF_FIELD.search(html)
    assert found is not None, "the form has no csrf field"
    return found.group(1)


@dataclass
class Crowd:
    project: Project
    client: TestClient
    admin: str
    worker: str


@pytest.fixture
def crowd(tmp_path: Path) -> Iterator[Crowd]:
    with Project.init(tmp_path / "p") as p:
        p.add_synsets([SQUARE])
        add_synthetic_candidates(p, [SQUARE], 30, render=False)
        gold_from_ground_truth(p, per_synset=4)
        app = create_app(p, CrowdSettings(grid_size=8, gold_per_task=2, block_min_gold=50))
        svc = app.state.service
        with TestClient(app) as client:
            yield Crowd(p, client, svc.create_token("admin"), svc.invite("ann").token)


@pytest.fixture
def shapes(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    world = build_world(tmp_path / "w", n_train=2, n_val=1, n_test=3)
    make_challenge(world)
    ((_, token),) = team_with_accounts(world, "alpha")
    with TestClient(create_app(world.project)) as client:
        yield client, token
    world.close()


def votes(p: Project) -> int:
    with p.session() as s:
        return int(s.scalar(select(func.count()).select_from(schema.Vote)) or 0)


def submissions(client: TestClient) -> int:
    project: Project = client.app.state.service.project  # type: ignore[attr-defined]
    with project.session() as s:
        return int(s.scalar(select(func.count()).select_from(schema.Submission)) or 0)


# -- login CSRF: a foreign page posting its own token must not sign the visitor in -----------------------


def test_admin_login_without_the_form_token_signs_nobody_in(crowd: Crowd) -> None:
    c = crowd.client
    r = c.post("/admin/login", data={"token": crowd.admin}, follow_redirects=False)  # a forged post
    assert r.status_code == 403 and "another site" in r.text
    assert "sf_admin" not in r.headers.get("set-cookie", "")
    assert c.get("/admin", follow_redirects=False).headers["location"] == "/admin/login"
    c.cookies.set(LOGIN_COOKIE, "a" * 43)  # a cookie, but the form carries another value
    r = c.post("/admin/login", data={"token": crowd.admin, "csrf": "b" * 43}, follow_redirects=False)
    assert r.status_code == 403 and "sf_admin" not in r.headers.get("set-cookie", "")


def test_admin_login_form_flow_still_signs_in(crowd: Crowd) -> None:
    c = crowd.client
    page = c.get("/admin/login")
    cookie = page.headers["set-cookie"].lower()
    assert LOGIN_COOKIE in cookie and "samesite=strict" in cookie and "httponly" in cookie
    token = csrf_of(page.text)
    assert token == c.cookies.get(LOGIN_COOKIE)
    assert c.post("/admin/login", data={"token": "wrong", "csrf": token}).status_code == 403
    r = c.post("/admin/login", data={"token": crowd.admin, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and "sf_admin=" in r.headers["set-cookie"]
    assert c.get("/admin").status_code == 200
    again = c.get("/admin/login")
    assert LOGIN_COOKIE not in again.headers.get("set-cookie", "") and csrf_of(again.text) == token


def test_a_cross_site_post_is_refused_even_with_a_valid_form_token(crowd: Crowd) -> None:
    c = crowd.client
    token = csrf_of(c.get("/admin/login").text)
    for headers in (EVIL, {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "same-site"}):
        r = c.post(
            "/admin/login",
            data={"token": crowd.admin, "csrf": token},
            headers=headers,
            follow_redirects=False,
        )
        assert r.status_code == 403 and "set-cookie" not in r.headers, headers
    assert c.get("/admin", follow_redirects=False).status_code == 303
    same = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    r = c.post(
        "/admin/login", data={"token": crowd.admin, "csrf": token}, headers=same, follow_redirects=False
    )
    assert r.status_code == 303


def test_cross_site_detection() -> None:
    host = {b"host": b"sf.example:8443"}
    assert not cross_site(host)  # no browser headers: a script or curl
    assert not cross_site({**host, b"origin": b"https://sf.example:8443"})
    assert cross_site({**host, b"origin": b"https://sf.example"})
    assert cross_site({**host, b"origin": b"null"})
    assert not cross_site({**host, b"sec-fetch-site": b"same-origin", b"origin": b"http://proxy.internal"})
    assert not cross_site({**host, b"sec-fetch-site": b"none"})
    assert cross_site({**host, b"sec-fetch-site": b"cross-site", b"origin": b"https://sf.example:8443"})


def test_challenge_login_and_logout_need_their_form_tokens(shapes: tuple[TestClient, str]) -> None:
    c, token = shapes
    r = c.post("/challenges/shapes/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 403 and PARTICIPANT_COOKIE not in r.headers.get("set-cookie", "")
    r = c.post("/challenges/shapes/login", data={"token": token, "csrf": "x" * 43}, headers=EVIL)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    form = csrf_of(c.get("/challenges/shapes/login").text)
    assert form == c.cookies.get(LOGIN_COOKIE)
    r = c.post("/challenges/shapes/login", data={"token": token, "csrf": form}, follow_redirects=False)
    assert r.status_code == 303 and f"{PARTICIPANT_COOKIE}=" in r.headers["set-cookie"]
    c.cookies.set(PARTICIPANT_COOKIE, token, path="/challenges")
    logout = csrf_of(c.get("/challenges/shapes").text, "/challenges/shapes/logout")
    forced = c.post("/challenges/shapes/logout", follow_redirects=False)  # a foreign page logging us out
    assert forced.status_code == 403 and "set-cookie" not in forced.headers
    out = c.post("/challenges/shapes/logout", data={"csrf": logout}, follow_redirects=False)
    assert out.status_code == 303 and f'{PARTICIPANT_COOKIE}=""' in out.headers["set-cookie"]


# -- forms of a signed-in user: their token, and the origin check in front -------------------------------


def test_signed_in_forms_refuse_cross_site_posts(crowd: Crowd) -> None:
    c = crowd.client
    c.get(f"/invite/{crowd.worker}")
    page = c.get("/work").text
    action = re.search(r'action="(/work/\d+)"', page)
    assert action is not None
    ids = re.findall(r'name="yes" value="(\d+)"', page)
    form = {"csrf": csrf_of(page), "yes": ids[:2]}
    assert c.post(action.group(1), data=form, headers=EVIL).status_code == 403
    assert votes(crowd.project) == 0
    assert c.post(action.group(1), data=form, follow_redirects=False).status_code == 303
    assert votes(crowd.project) > 0
    admin = TestClient(c.app)
    login = csrf_of(admin.get("/admin/login").text)
    admin.post("/admin/login", data={"token": crowd.admin, "csrf": login})
    workers = admin.get("/admin/workers").text
    token = csrf_of(workers)
    worker_id = re.search(r'action="/admin/workers/(\d+)/block"', workers)
    assert worker_id is not None
    url = f"/admin/workers/{worker_id.group(1)}/block"
    assert admin.post(url, data={"csrf": token}, headers=EVIL).status_code == 403
    assert admin.post("/admin/logout", data={"csrf": token}, headers=EVIL).status_code == 403
    assert admin.get("/admin").status_code == 200  # still signed in
    with crowd.project.session() as s:
        assert s.get(schema.Worker, int(worker_id.group(1))).status == "active"  # type: ignore[union-attr]


def test_upload_form_refuses_cross_site_posts(shapes: tuple[TestClient, str]) -> None:
    c, token = shapes
    c.cookies.set(PARTICIPANT_COOKIE, token, path="/challenges")
    form = csrf_of(c.get("/challenges/shapes/submit").text, "/challenges/shapes/submit")
    world_file = {"file": ("p.txt", b"1\n" * 4)}
    r = c.post("/challenges/shapes/submit", data={"csrf": form}, files=world_file, headers=EVIL)
    assert r.status_code == 403 and submissions(c) == 0
    assert c.post("/challenges/shapes/submit", files=world_file).status_code == 403  # no token
    assert submissions(c) == 0
    ok = c.post("/challenges/shapes/submit", data={"csrf": form}, files=world_file, follow_redirects=False)
    assert ok.status_code == 303 and submissions(c) == 1


def test_bearer_api_calls_need_no_form_token(shapes: tuple[TestClient, str]) -> None:
    c, token = shapes
    r = c.post(
        "/api/challenges/shapes/submissions", content=b"1\n", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 202 and submissions(c) == 1
