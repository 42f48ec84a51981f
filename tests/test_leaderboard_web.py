"""Challenge pages and API over HTTP: the flows, and the security rules.

* no page or API returns hidden labels, hidden keys or per-image results; private scores only after the end;
* a token sees only its own team's submissions;
* uploads over the limit get 413 and leave nothing behind;
* user text is escaped in pages, and CSV cells cannot run as spreadsheet formulas.
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from _challenge_fixtures import World, build_world, make_challenge, oracle_file, team_with_accounts, truth
from synsetforge.benchmark.challenge import get_challenge, hidden
from synsetforge.benchmark.participants import Account, create_account
from synsetforge.benchmark.standings import csv_safe
from synsetforge.benchmark.worker import drain
from synsetforge.store import schema
from synsetforge.web.challenge_routes import COOKIE, csrf_for, router

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def make_app(world: World) -> FastAPI:
    """The project's real app (when the web package has one) with the challenge routes included."""
    try:
        from synsetforge.web.app import create_app
    except ImportError:  # pragma: no cover - before the web package existed
        app = FastAPI()
        app.state.project = world.project
    else:
        app = create_app(world.project)
    app.include_router(router)
    return app


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path / "proj")
    yield w
    w.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(make_app(world)) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _setup(world: World, **settings: Any) -> tuple[tuple[Account, str], tuple[Account, str]]:
    make_challenge(world, **settings)
    ((a, ta),) = team_with_accounts(world, "alpha")
    ((b, tb),) = team_with_accounts(world, "beta")
    return (a, ta), (b, tb)


def _get_routes() -> list[str]:
    return [r.path for r in router.routes if "GET" in getattr(r, "methods", set())]  # type: ignore[attr-defined]


def _fill(path: str, submission_id: int) -> str:
    return (
        path.replace("{name}", "shapes")
        .replace("{image}", "test_00000001.JPEG")
        .replace("{submission_id}", str(submission_id))
    )


def _numeric_lists(value: Any) -> list[int]:
    """Lengths of all lists of numbers/booleans inside a JSON value."""
    out: list[int] = []
    if isinstance(value, dict):
        for v in value.values():
            out += _numeric_lists(v)
    elif isinstance(value, list):
        if value and all(isinstance(v, int | float | bool) for v in value):
            out.append(len(value))
        for v in value:
            out += _numeric_lists(v)
    return out


def test_no_page_or_api_leaks_hidden_labels_or_private_results(world: World, client: TestClient) -> None:
    (_a, ta), (_b, tb) = _setup(world)
    oracle = client.post(
        "/api/challenges/shapes/submissions", content=oracle_file(world, "shapes"), headers=bearer(ta)
    )
    partly = client.post(
        "/api/challenges/shapes/submissions",
        content=oracle_file(world, "shapes", wrong=7),
        headers=bearer(tb),
    )
    assert oracle.status_code == partly.status_code == 202
    drain(world.project)
    info = get_challenge(world.project, "shapes")
    secrets_ = list(hidden(world.project, info.id).values())
    with world.project.session() as s:
        for row in s.scalars(select(schema.Submission)):
            secrets_.append(row.private_scores["losses"])
            for m, sc in row.private_scores["metrics"].items():
                if sc["value"] not in (0.0, 1.0) and sc["value"] != row.public_scores["metrics"][m]["value"]:
                    secrets_.append(repr(sc["value"]))
    names, labels, classes = truth(world, "shapes")
    pairs = [
        re.compile(re.escape(n) + r"[\s,;:\"'=|>]{1,12}" + re.escape(classes[y]))
        for n, y in zip(names, labels, strict=True)
    ]
    sizes = {info.n_test, info.n_public, info.n_private}
    bodies = 0
    for who in ({}, bearer(ta), bearer(tb)):
        cookies = {COOKIE: who["Authorization"].split()[1]} if who else {}
        client.cookies.clear()
        for name, value in cookies.items():
            client.cookies.set(name, value, path="/challenges")
        for path in _get_routes():
            for board in ("public", "private"):
                r = client.get(_fill(path, oracle.json()["id"]), headers=who, params={"board": board})
                assert r.status_code < 500, path
                if r.headers.get("content-type", "").startswith("image/"):
                    continue
                text = r.text
                bodies += 1
                for secret in secrets_:
                    assert secret not in text, (path, secret)
                for pattern in pairs:
                    assert not pattern.search(text), (path, pattern.pattern)
                if r.headers.get("content-type", "").startswith("application/json"):
                    assert not sizes & set(_numeric_lists(r.json())), path
                    assert '"private": {' not in json.dumps(r.json()), path
    assert bodies > 30
    # the private board is refused before the end
    assert client.get("/api/challenges/shapes/leaderboard", params={"board": "private"}).status_code == 403
    assert client.get("/challenges/shapes/leaderboard.csv", params={"board": "private"}).status_code == 403


def test_private_scores_appear_after_the_end(world: World, client: TestClient) -> None:
    (_a, ta), _ = _setup(world, ends_at=datetime.now(UTC) + timedelta(days=1))
    r = client.post(
        "/api/challenges/shapes/submissions",
        content=oracle_file(world, "shapes", wrong=3),
        headers=bearer(ta),
    )
    drain(world.project)
    status = client.get(r.json()["status_url"], headers=bearer(ta)).json()
    assert status["status"] == "scored" and status["private"] is None and status["public"]["top5_error"]
    with world.project.session() as s:
        ch = s.scalar(select(schema.Challenge).where(schema.Challenge.name == "shapes"))
        assert ch is not None
        ch.ends_at = datetime.now(UTC) - timedelta(minutes=1)
    status = client.get(r.json()["status_url"], headers=bearer(ta)).json()
    assert set(status["private"]) == {"top5_error", "top1_error", "hierarchical_error_normalized"}
    board = client.get("/api/challenges/shapes/leaderboard", params={"board": "private"}).json()
    assert board["tracks"]["provided data"][0]["team"] == "alpha"
    page = client.get("/challenges/shapes/leaderboard", params={"board": "private"})
    assert page.status_code == 200 and "private leaderboard" in page.text


def test_tokens_are_scoped_to_their_team(world: World, client: TestClient) -> None:
    (_a, ta), (_b, tb) = _setup(world)
    ra = client.post(
        "/api/challenges/shapes/submissions", content=oracle_file(world, "shapes"), headers=bearer(ta)
    )
    rb = client.post(
        "/api/challenges/shapes/submissions", content=oracle_file(world, "shapes"), headers=bearer(tb)
    )
    id_a, id_b = ra.json()["id"], rb.json()["id"]
    assert client.get(f"/api/challenges/shapes/submissions/{id_a}", headers=bearer(ta)).status_code == 200
    other = client.get(f"/api/challenges/shapes/submissions/{id_a}", headers=bearer(tb))
    assert other.status_code == 404 and "alpha" not in other.text
    listed = client.get("/api/challenges/shapes/submissions", headers=bearer(tb)).json()
    assert [s["id"] for s in listed["submissions"]] == [id_b] and listed["team"] == "beta"
    # a second account of team alpha sees the team's submission
    _, ta2 = create_account(world.project, "alpha", "second")
    assert client.get(f"/api/challenges/shapes/submissions/{id_a}", headers=bearer(ta2)).status_code == 200
    # pages: my submissions lists only the team's rows
    client.cookies.set(COOKIE, tb, path="/challenges")
    page = client.get("/challenges/shapes/submissions")
    assert f'id="submission-{id_b}"' in page.text and f'id="submission-{id_a}"' not in page.text
    client.cookies.clear()
    # no or bad tokens
    assert client.get("/api/challenges/shapes/submissions").status_code == 401
    assert client.get("/api/challenges/shapes/submissions", headers=bearer(ta + "x")).status_code == 401
    # the login cookie alone cannot post to the API (so another site cannot make a browser submit)
    client.cookies.set(COOKIE, ta, path="/challenges")
    r = client.post("/api/challenges/shapes/submissions", content=oracle_file(world, "shapes"))
    assert r.status_code == 401
    # ... and the page form needs the CSRF field derived from the token
    r = client.post("/challenges/shapes/submit", files={"file": ("p.txt", oracle_file(world, "shapes"))})
    assert r.status_code == 403
    with world.project.session() as s:
        assert s.scalar(select(func.count()).select_from(schema.Submission)) == 2


def test_uploads_over_the_limit_get_413_and_store_nothing(world: World, client: TestClient) -> None:
    (_a, ta), _ = _setup(world, max_upload_bytes=2000)
    big = b"1\n" * 1200  # 2,400 bytes
    r = client.post("/api/challenges/shapes/submissions", content=big, headers=bearer(ta))
    assert r.status_code == 413 and "at most 2,000" in r.json()["detail"]
    r = client.post("/api/challenges/shapes/submissions", files={"file": ("p.txt", big)}, headers=bearer(ta))
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(200):
            yield b"1\n" * 500

    r = client.post("/api/challenges/shapes/submissions", content=chunks(), headers=bearer(ta))
    assert r.status_code == 413
    client.cookies.set(COOKIE, ta, path="/challenges")
    r = client.post("/challenges/shapes/submit", data={"csrf": csrf_for(ta)}, files={"file": ("p.txt", big)})
    assert r.status_code == 413 and "at most 2,000" in r.text
    with world.project.session() as s:
        assert s.scalar(select(func.count()).select_from(schema.Submission)) == 0
    ok = client.post(
        "/api/challenges/shapes/submissions", content=oracle_file(world, "shapes"), headers=bearer(ta)
    )
    assert ok.status_code == 202


def test_page_flow_login_submit_poll_and_limits(world: World, client: TestClient) -> None:
    (_a, ta), _ = _setup(world, daily_limit=2)
    assert client.get("/challenges/shapes/submissions", follow_redirects=False).status_code == 303
    login = re.search(r'name="csrf" value="([^"]+)"', client.get("/challenges/shapes/login").text)
    assert login is not None
    r = client.post("/challenges/shapes/login", data={"token": "wrong", "csrf": login.group(1)})
    assert r.status_code == 401 and "Unknown token" in r.text
    r = client.post(
        "/challenges/shapes/login", data={"token": ta, "csrf": login.group(1)}, follow_redirects=False
    )
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    client.cookies.set(COOKIE, ta, path="/challenges")
    page = client.get("/challenges/shapes/submit")
    assert csrf_for(ta) in page.text and 'id="left">2<' in page.text
    send = {"data": {"csrf": csrf_for(ta)}, "follow_redirects": False}
    r = client.post("/challenges/shapes/submit", files={"file": ("p.txt", b"garbage\n")}, **send)  # type: ignore[arg-type]
    assert r.status_code == 303 and r.headers["location"].startswith("/challenges/shapes/submissions?new=")
    mine = client.get("/challenges/shapes/submissions")
    assert "queued" in mine.text and 'http-equiv="refresh"' in mine.text
    drain(world.project)
    mine = client.get("/challenges/shapes/submissions")
    assert "failed" in mine.text and "19 test images" in mine.text and "(not counted)" in mine.text
    assert 'http-equiv="refresh"' not in mine.text
    for _ in range(2):
        r = client.post(
            "/challenges/shapes/submit", files={"file": ("p.txt", oracle_file(world, "shapes"))}, **send
        )  # type: ignore[arg-type]
        assert r.status_code == 303
    r = client.post(
        "/challenges/shapes/submit", files={"file": ("p.txt", oracle_file(world, "shapes"))}, **send
    )  # type: ignore[arg-type]
    assert r.status_code == 429 and "per team" in r.text
    drain(world.project)
    board = client.get("/challenges/shapes/leaderboard")
    assert "alpha" in board.text and "0.00%" in board.text


def test_user_text_is_escaped_and_csv_is_formula_safe(world: World, client: TestClient) -> None:
    make_challenge(world, daily_limit=1)
    names = [
        '=HYPERLINK("http://evil.example","x")',
        "+1+2",
        "-3",
        "@SUM(A1)",
        "\tTAB",
        "\rCR",
        "<script>alert(1)</script>",
    ]
    for k, name in enumerate(names):
        # names with control characters are refused by create_team; insert them as a raw row would be
        with world.project.session() as s:
            row = schema.Team(name=name)
            s.add(row)
            s.flush()
            team_id = row.id
        _, token = create_account(world.project, team_id, f"user{k}")
        client.post(
            "/api/challenges/shapes/submissions",
            content=oracle_file(world, "shapes", wrong=k),
            headers=bearer(token),
        )
    drain(world.project)
    page = client.get("/challenges/shapes/leaderboard")
    assert (
        "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    )
    api = client.get("/api/challenges/shapes/leaderboard").json()
    assert sorted(e["team"] for e in api["tracks"]["provided data"]) == sorted(names)
    r = client.get("/challenges/shapes/leaderboard.csv")
    assert (
        r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    )
    rows = list(csv.reader(io.StringIO(r.text, newline="")))
    assert rows[0][:3] == ["track", "rank", "team"] and len(rows) == len(names) + 1
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    teams = {row[2] for row in rows[1:]}
    assert '\'=HYPERLINK("http://evil.example","x")' in teams and "'\tTAB" in teams and "'\rCR" in teams
    assert "<script>alert(1)</script>" in teams  # not a formula: kept as is (CSV is not HTML)
    assert csv_safe("-0.5") == "'-0.5" and csv_safe("0.5") == "0.5" and csv_safe(None) == ""


def test_downloads_and_missing_things(world: World, client: TestClient) -> None:
    make_challenge(world)
    names = client.get("/challenges/shapes/test_images.txt").text.split()
    assert names == [f"test_{k:08d}.JPEG" for k in range(1, 20)]
    img = client.get(f"/challenges/shapes/test/{names[0]}")
    assert img.status_code == 200 and img.content[:2] == b"\xff\xd8"
    assert client.get("/challenges/shapes/test/test_00000020.JPEG").status_code == 404
    assert client.get("/challenges/shapes/test/..%2Fproject.db").status_code == 404
    classes = client.get("/challenges/shapes/classes.txt").text.splitlines()
    assert classes[0].startswith("circle ") and len(classes) == 4
    val = client.get("/challenges/shapes/val_labels.csv").text.splitlines()
    assert val[0] == "ImageId,Label" and len(val) == 9
    first_val = val[1].split(",")[0]
    assert client.get(f"/challenges/shapes/val/{first_val}").status_code == 200
    assert client.get("/challenges/nope").status_code == 404
    assert client.get("/api/challenges/nope").status_code == 404
    assert client.get("/challenges/shapes/leaderboard", params={"board": "x"}).status_code == 400
    overview = client.get("/challenges/shapes")
    assert "per team" in overview.text and "top-5 error" in overview.text
    assert client.get("/challenges/static/challenge.css").headers["content-type"].startswith("text/css")
