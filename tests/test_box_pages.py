"""The box task pages (`/boxes/work`) through FastAPI's TestClient, on SQLite and PostgreSQL: each page shows
the class, the image(s) and the right boxes, its form stores the answer, malformed or refused forms store
nothing, user text is escaped, and the pages follow the worker sign-in, CSRF and closed-task rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from _boxes_fixtures import build_box_project
from synsetforge.boxes.service import BoxService
from synsetforge.boxes.settings import BoxSettings
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app

NO_GOLD = BoxSettings(
    enroll_every_s=0, quality_gold=0, coverage_gold=0, draw_gold_rate=0, draw_probation_gold=0
)


@dataclass
class Env:
    project: Project
    app: object
    crowd: CrowdService
    boxes: BoxService
    truth: dict[int, list[list[int]]]

    def worker(self, name: str = "w") -> tuple[TestClient, int]:
        new = self.crowd.invite(name)
        client = TestClient(self.app)  # type: ignore[arg-type]
        client.cookies.set("sf_worker", new.token)
        return client, new.worker_id


def make_env(folder: Path, db: str | None = None) -> Iterator[Env]:
    with Project.init(folder, db=db) as p:
        truth = build_box_project(p, per_synset=3)
        app = create_app(p, CrowdSettings(block_min_gold=4), seed=1)
        crowd: CrowdService = app.state.service
        app.state.boxes = BoxService(p, NO_GOLD, seed=1, crowd=crowd)
        yield Env(p, app, crowd, app.state.boxes, truth)


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    """On SQLite and PostgreSQL: for the tests that store answers."""
    yield from make_env(tmp_path / "p", db_url)


@pytest.fixture
def env1(tmp_path: Path) -> Iterator[Env]:
    """SQLite only: for the tests of what pages show."""
    yield from make_env(tmp_path / "p")


def form_of(html: str, form_id: str) -> dict[str, object]:
    """Action, hidden fields and checkbox values of one form of a page."""
    m = re.search(rf'<form id="{form_id}"[^>]*action="(/boxes/work/\d+)"[^>]*>(.*?)</form>', html, re.S)
    assert m is not None, f"no form {form_id}"
    body = m.group(2)
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', body))
    ticks = [int(v) for v in re.findall(r'type="checkbox" name="\w+" value="(\d+)"', body)]
    return {"action": m.group(1), "ticks": ticks, **hidden}


def counts(p: Project) -> tuple[int, int, int]:
    with p.session() as s:
        return (
            int(s.scalar(select(func.count()).select_from(schema.BoxRow)) or 0),
            int(s.scalar(select(func.count()).select_from(schema.BoxVote)) or 0),
            int(s.scalar(select(func.count()).where(schema.Task.status == "submitted")) or 0),
        )


def served_size(p: Project, candidate_id: int) -> tuple[int, int]:
    with p.session() as s:
        c = s.get(schema.Candidate, candidate_id)
        assert c is not None and c.image_id is not None
        img = s.get(schema.Image, c.image_id)
        assert img is not None and img.width and img.height
        assert (img.width, img.height) == (img.orig_width, img.orig_height)  # so stored = posted pixels
        return img.width, img.height


def add_boxes(p: Project, boxes: dict[int, list[int]], origin: str = "import", status: str = "good") -> None:
    with p.session() as s:
        for cid, (x1, y1, x2, y2) in boxes.items():
            s.add(schema.BoxRow(candidate_id=cid, x1=x1, y1=y1, x2=x2, y2=y2, origin=origin, status=status))
        s.commit()


def draw_page(env: Env) -> tuple[TestClient, int, str, dict[str, object]]:
    client, wid = env.worker()
    r = client.get("/boxes/work?kind=draw")
    assert r.status_code == 200, r.text
    return client, wid, r.text, form_of(r.text, "draw")


def test_draw_page_shows_the_class_image_and_accepted_boxes_and_stores_a_box(env: Env) -> None:
    env.boxes.enroll()
    shown = {cid: [3, 4, 20, 25] for cid in env.truth}
    add_boxes(env.project, shown)  # an accepted box on every image, still waiting for more drawing
    client, wid, html, form = draw_page(env)
    cid = int(re.findall(r'href="/img/(\d+)"', html)[0])
    w, h = served_size(env.project, cid)
    assert re.search(r'Draw a tight box around one <em class="target">(square|triangle)</em>', html)
    assert f'viewBox="0 0 {w} {h}"' in html and f'data-width="{w}" data-height="{h}"' in html
    assert '<rect class="accepted" x="3" y="4" width="18" height="22"' in html  # inclusive corners
    assert "gold" not in html.lower()
    before = counts(env.project)
    r = client.post(
        str(form["action"]),
        data={
            "csrf": form["csrf"],
            "kind": "draw",
            "want": "draw",
            "x1": "5",
            "y1": "6",
            "x2": "30",
            "y2": "31.0",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/boxes/work?kind=draw&saved=1"
    with env.project.session() as s:
        rows = s.execute(
            select(
                schema.BoxRow.candidate_id,
                schema.BoxRow.x1,
                schema.BoxRow.y1,
                schema.BoxRow.x2,
                schema.BoxRow.y2,
            ).where(schema.BoxRow.worker_id == wid)
        ).all()
    assert [tuple(r) for r in rows] == [(cid, 5, 6, 30, 31)]
    assert counts(env.project)[2] == before[2] + 1
    nxt = client.get(r.headers["location"])
    assert nxt.status_code == 200 and "Saved." in nxt.text


def test_none_left_is_stored_as_a_covered_answer(env1: Env) -> None:
    client, wid, html, _ = draw_page(env1)
    form = form_of(html, "none-left")
    assert form["none_left"] == "1"
    r = client.post(
        str(form["action"]),
        data={"csrf": form["csrf"], "kind": "draw", "none_left": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with env1.project.session() as s:
        votes = s.execute(
            select(schema.BoxVote.kind, schema.BoxVote.label).where(schema.BoxVote.worker_id == wid)
        ).all()
        drawn = s.scalar(select(func.count()).where(schema.BoxRow.worker_id == wid))
    assert [tuple(v) for v in votes] == [("coverage", True)] and drawn == 0


def test_quality_grid_shows_each_box_and_stores_ticks(env: Env) -> None:
    _, drawer = env.worker("drawer")
    while (view := env.boxes.next_task(drawer, "draw")) is not None:
        env.boxes.submit(drawer, view.id, {"box": [2 + view.id % 5, 3, 40, 41]})
    client, wid = env.worker("verifier")
    r = client.get("/boxes/work?kind=quality")
    assert r.status_code == 200, r.text
    html = r.text
    form = form_of(html, "task")
    assert form["kind"] == "quality" and len(form["ticks"]) >= 2  # type: ignore[arg-type]
    with env.project.session() as s:
        boxes = {
            int(b.id): b
            for b in s.scalars(select(schema.BoxRow).where(schema.BoxRow.id.in_(form["ticks"])))  # type: ignore[arg-type]
        }
    assert set(boxes) == set(form["ticks"])  # type: ignore[arg-type]
    for b in boxes.values():
        assert b.worker_id == drawer and b.status == "proposed"
        assert f'<rect class="judged" x="{b.x1}" y="{b.y1}" width="{b.x2 - b.x1 + 1}"' in html
    assert "tight" in html and "gold" not in html.lower()
    # each tile is cropped around its box (with some of the image around it), so a small box looks large
    views = [[float(v) for v in m.split()] for m in re.findall(r'class="thumb-svg" viewBox="([^"]+)"', html)]
    images = [
        (int(a), int(b))
        for a, b in re.findall(r'<image href="/img/\d+" x="0" y="0" width="(\d+)" height="(\d+)"', html)
    ]
    assert len(views) == len(images) == len(boxes)
    for (x, y, vw, vh), (iw, ih), b in zip(views, images, [boxes[t] for t in form["ticks"]], strict=True):
        assert 0 <= x <= b.x1 and 0 <= y <= b.y1 and x + vw >= b.x2 + 1 and y + vh >= b.y2 + 1  # box inside
        assert vw < iw and vh < ih  # but not the whole image
    good = form["ticks"][0]  # type: ignore[index]
    r = client.post(
        str(form["action"]),
        data={"csrf": form["csrf"], "kind": "quality", "want": "quality", "good": str(good)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/boxes/work?kind=quality")
    with env.project.session() as s:
        votes = dict(
            s.execute(
                select(schema.BoxVote.box_id, schema.BoxVote.label).where(
                    schema.BoxVote.worker_id == wid, schema.BoxVote.kind == "quality"
                )
            ).all()
        )
    assert votes == {bid: bid == good for bid in boxes}


def test_coverage_grid_shows_accepted_boxes_and_stores_ticks(env: Env) -> None:
    add_boxes(env.project, {cid: t[0] for cid, t in env.truth.items()})  # first instance boxed on each image
    client, wid = env.worker()
    r = client.get("/boxes/work?kind=coverage")
    assert r.status_code == 200, r.text
    form = form_of(r.text, "task")
    ids = form["ticks"]
    assert form["kind"] == "coverage" and ids and set(ids) <= set(env.truth)  # type: ignore[arg-type]
    for cid in ids:  # type: ignore[attr-defined]
        x1, y1, x2, y2 = env.truth[cid][0]
        assert (
            f'<rect class="accepted" x="{x1}" y="{y1}" width="{x2 - x1 + 1}" height="{y2 - y1 + 1}"' in r.text
        )
    covered = [cid for cid in ids if len(env.truth[cid]) == 1]  # type: ignore[attr-defined]
    r = client.post(
        str(form["action"]),
        data={"csrf": str(form["csrf"]), "kind": "coverage", "covered": [str(c) for c in covered]},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with env.project.session() as s:
        votes = dict(
            s.execute(
                select(schema.BoxVote.candidate_id, schema.BoxVote.label).where(
                    schema.BoxVote.worker_id == wid, schema.BoxVote.kind == "coverage"
                )
            ).all()
        )
    assert votes == {cid: cid in covered for cid in ids}  # type: ignore[attr-defined]


def test_bad_forms_are_refused_and_store_nothing(env: Env) -> None:
    client, _, html, form = draw_page(env)
    cid = int(re.findall(r'href="/img/(\d+)"', html)[0])
    w, h = served_size(env.project, cid)
    base = {"csrf": str(form["csrf"]), "kind": "draw"}
    box = {"x1": "2", "y1": "2", "x2": "20", "y2": "20"}
    bad: list[tuple[dict[str, str | list[str]], int]] = [
        ({**base, **box, "x1": "nan"}, 400),
        ({**base, **box, "x2": "inf"}, 400),
        ({**base, **box, "y1": "-1"}, 400),
        ({**base, **box, "y2": "1e3"}, 400),
        ({**base, **box, "y2": ""}, 400),
        ({**base, "x1": "2", "y1": "2"}, 400),
        ({**base, **box, "x2": "2"}, 422),  # zero width
        ({**base, **box, "x1": "30"}, 422),  # negative width
        ({**base, **box, "x2": str(w)}, 422),  # one pixel outside the image
        ({**base, **box, "y2": str(h + 500)}, 422),
        ({**base, **box, "none_left": "1"}, 400),  # both answers at once
        ({**base, "none_left": "yes"}, 400),
        ({**base, "kind": "quality", "good": "1"}, 422),  # not this task's kind
        ({**base, "kind": "coverage", "covered": str(cid + 1000)}, 422),
        ({**base, "kind": "bogus", **box}, 400),
        ({**base, "kind": "quality", "good": ["1", "abc"]}, 400),
        ({**base, "kind": "coverage", "covered": [str(cid)] * 1001}, 400),  # too many ticks
        ({**base, "kind": "coverage", "covered": [str(i) for i in range(5000)]}, 400),
        ({**box, "kind": "draw"}, 403),  # no form token
        ({**base, **box, "csrf": "0" * 32}, 403),
    ]
    before = counts(env.project)
    for data, status in bad:
        r = client.post(str(form["action"]), data=data, follow_redirects=False)  # type: ignore[arg-type]
        shown = {k: v if isinstance(v, str) else v[:3] for k, v in data.items()}
        assert r.status_code == status, (shown, r.status_code, r.text[:300])
        assert counts(env.project) == before
    # a form sent from another site's page is refused before the route runs
    r = client.post(
        str(form["action"]),
        data={**base, **box},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and counts(env.project) == before
    # another worker cannot answer this task; the task stays open for its worker
    other, _ = env.worker("other")
    r = other.post(str(form["action"]), data={**base, **box}, follow_redirects=False)
    assert r.status_code in (403, 404) and counts(env.project) == before
    r = client.post(str(form["action"]), data={**base, **box}, follow_redirects=False)
    assert r.status_code == 303 and counts(env.project)[0] == before[0] + 1
    r = client.post(str(form["action"]), data={**base, **box}, follow_redirects=False)
    assert r.status_code == 409 and counts(env.project)[0] == before[0] + 1


def test_user_text_is_escaped(env1: Env) -> None:
    with env1.project.session() as s:
        s.execute(
            update(schema.Synset).values(
                lemmas=["<script>alert(1)</script>", "x & y"], gloss='a "figure" <img src=x onerror=alert(2)>'
            )
        )
        s.commit()
    env1.boxes.enroll()
    add_boxes(env1.project, {cid: t[0] for cid, t in env1.truth.items()})
    client, _ = env1.worker()
    for kind in ("draw", "coverage"):
        r = client.get(f"/boxes/work?kind={kind}")
        assert r.status_code == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "x &amp; y" in r.text
        assert "<script>alert" not in r.text and "<img src=x" not in r.text
        if kind == "draw":
            form = form_of(r.text, "none-left")
            client.post(str(form["action"]), data={"csrf": form["csrf"], "kind": "draw", "none_left": "1"})


def test_sign_in_kinds_and_blocked_workers(env1: Env) -> None:
    anon = TestClient(env1.app)  # type: ignore[arg-type]
    assert anon.get("/boxes/work").status_code == 401
    assert anon.post("/boxes/work/1", data={"kind": "draw"}).status_code == 401
    client, wid = env1.worker()
    assert client.get("/boxes/work?kind=bogus").status_code == 400
    r = client.get("/boxes/work")  # the most needed kind: drawing, in a fresh project
    assert r.status_code == 200 and 'id="draw"' in r.text
    r = client.get("/boxes/work?kind=quality")  # an open task comes back whatever kind is asked for
    assert r.status_code == 200 and 'id="draw"' in r.text
    env1.crowd.block(wid, "blocked by an admin")
    r = client.get("/boxes/work?kind=draw")
    assert r.status_code == 403 and "blocked" in r.text.lower()


def test_box_invite_link_signs_in_and_leads_to_box_work(env1: Env) -> None:
    new = env1.crowd.invite("boxer")
    client = TestClient(env1.app)  # type: ignore[arg-type]
    r = client.get(f"/boxes/invite/{new.token}?kind=coverage", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/boxes/work?kind=coverage"
    assert client.get(r.headers["location"]).status_code == 200  # signed in by the cookie just set
    r = client.get(f"/boxes/invite/{new.token}?kind=<b>", follow_redirects=False)
    assert r.headers["location"] == "/boxes/work"  # an unknown kind is dropped, not echoed
    fresh = TestClient(env1.app)  # type: ignore[arg-type]
    r = fresh.get("/boxes/invite/not-a-token", follow_redirects=False)
    assert r.status_code == 403 and "sf_worker" not in r.headers.get("set-cookie", "")


def test_marketplace_worker_gets_a_completion_code_after_each_box_task(env1: Env) -> None:
    key = env1.crowd.create_token("marketplace")
    client = TestClient(env1.app)  # type: ignore[arg-type]
    url = f"/boxes/m/{key}?kind=draw&workerId=A1B2&assignmentId=3XYZ&hitId=H&turkSubmitTo=https%3A%2F%2Fwww.mturk.com"
    r = client.get(url, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/boxes/work?kind=draw"
    assert client.get("/boxes/m/not-a-key?workerId=A1").status_code == 403
    page = client.get("/boxes/work?kind=draw")
    form = form_of(page.text, "none-left")
    r = client.post(
        str(form["action"]),
        data={"csrf": form["csrf"], "kind": "draw", "want": "draw", "none_left": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/boxes/work/done/")
    done = client.get(r.headers["location"])
    with env1.project.session() as s:
        code = s.scalar(select(schema.Task.completion_code).where(schema.Task.status == "submitted"))
    assert code and f'id="code">{code}<' in done.text
    assert (
        'name="assignmentId" value="3XYZ"' in done.text and "www.mturk.com/mturk/externalSubmit" in done.text
    )
    assert 'href="/boxes/work?kind=draw"' in done.text


def test_no_work_page(env1: Env) -> None:
    client, _ = env1.worker()
    r = client.get("/boxes/work?kind=coverage")  # nothing has a box yet
    assert r.status_code == 200 and 'id="nowork"' in r.text and "No boxes to check" in r.text
