"""Box tasks in a real browser (Debian's Chromium driven by Playwright) against the app served by uvicorn on
127.0.0.1: a box drawn with the mouse on a desktop viewport and with a finger on a phone viewport (touch
events through the DevTools protocol, so the page's pointer code sees pointerType "touch"), edges nudged
with the keyboard, and both verification grids ticked; every answer is read back from the database."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from _browser import launch_chromium
from synsetforge.boxes.service import BoxService
from synsetforge.boxes.settings import BoxSettings
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app
from synsetforge.web.server import ThreadedServer

playwright_api = pytest.importorskip("playwright.sync_api")
SQUARE = "n13878634"
pytestmark = [pytest.mark.browser, pytest.mark.slow]
NO_GOLD = BoxSettings(
    enroll_every_s=0, quality_gold=0, coverage_gold=0, draw_gold_rate=0, draw_probation_gold=0
)
IMPORTED = 3  # images that arrive with one imported box (for the coverage grid); the rest need drawing


class Served:
    def __init__(self, project: Project, server: ThreadedServer, boxes: BoxService) -> None:
        self.project, self.server, self.boxes = project, server, boxes

    def login(self, context: Any, name: str, kind: str) -> tuple[Any, int]:
        worker = self.boxes.crowd.invite(name)
        page = context.new_page()
        page.set_default_timeout(15000)
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.goto(f"{self.server.url}/boxes/invite/{worker.token}?kind={kind}")  # straight to box work
        page.wait_for_url(f"{self.server.url}/boxes/work?kind={kind}")
        return page, worker.worker_id

    def boxes_of(self, worker_id: int) -> list[tuple[int, int, int, int, int]]:
        b = schema.BoxRow
        with self.project.session() as s:
            rows = s.execute(select(b.candidate_id, b.x1, b.y1, b.x2, b.y2).where(b.worker_id == worker_id))
            return [tuple(int(v) for v in r) for r in rows]  # type: ignore[misc]

    def votes_of(self, worker_id: int, kind: str) -> dict[int, bool]:
        v = schema.BoxVote
        key = v.box_id if kind == "quality" else v.candidate_id
        with self.project.session() as s:
            rows = s.execute(select(key, v.label).where(v.worker_id == worker_id, v.kind == kind))
            return {int(k): bool(label) for k, label in rows}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with Project.init(tmp_path / "p") as p:
        p.add_synsets([SQUARE])
        add_synthetic_candidates(p, [SQUARE], 8, precision=1.0)  # real rendered JPEGs
        with p.session() as s:
            s.execute(update(schema.Candidate).values(decision="accepted", confidence=0.99))
            ids = list(s.scalars(select(schema.Candidate.id).order_by(schema.Candidate.id)))
            for cid in ids[:IMPORTED]:
                s.add(
                    schema.BoxRow(
                        candidate_id=cid, x1=10, y1=12, x2=60, y2=70, origin="import", status="good"
                    )
                )
            s.commit()
        app = create_app(p, CrowdSettings(block_min_gold=4), seed=3)
        app.state.boxes = BoxService(p, NO_GOLD, seed=3, crowd=app.state.service)
        with ThreadedServer(app) as server:
            yield Served(p, server, app.state.boxes)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()


def image_frame(page: Any) -> tuple[int, int, dict[str, float]]:
    """The served image size and where the image lies on screen (CSS pixels)."""
    page.evaluate("document.getElementById('canvas').scrollIntoView({block: 'start'})")  # all of it in view
    w = int(page.get_attribute("#draw", "data-width"))
    h = int(page.get_attribute("#draw", "data-height"))
    rect = page.evaluate(
        "(() => { const r = document.getElementById('photo').getBoundingClientRect();"
        " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()"
    )
    return w, h, rect


def on_screen(rect: dict[str, float], w: int, h: int, x: float, y: float) -> tuple[float, float]:
    return rect["x"] + x * rect["width"] / w, rect["y"] + y * rect["height"] / h


def drawn(page: Any) -> list[int]:
    return [int(v) for v in (page.get_attribute("#draw", "data-box") or "").split(",")]


def image_loads(page: Any) -> bool:
    return bool(
        page.evaluate(
            "Promise.all(Array.from(document.querySelectorAll('svg image')).map("
            "i => fetch(i.getAttribute('href')).then(r => r.ok && r.headers.get('content-type').startsWith('image/'))"
            ")).then(a => a.length > 0 && a.every(Boolean))"
        )
    )


def near(got: int, want: float, tol: float = 2.0) -> bool:
    return abs(got - want) <= tol


def test_mouse_draws_a_box_and_keys_nudge_its_edges(served: Served, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page, wid = served.login(context, "mouse", "draw")
    assert page.errors == [] and page.locator("#send").is_disabled()  # nothing to send before a box is drawn
    assert image_loads(page)
    w, h, rect = image_frame(page)
    a, b = (0.2 * w, 0.25 * h), (0.7 * w, 0.8 * h)
    page.mouse.move(*on_screen(rect, w, h, *a))
    page.mouse.down()
    page.mouse.move(*on_screen(rect, w, h, *b), steps=8)
    page.mouse.up()
    assert page.get_attribute("#draw", "data-pointer") == "mouse"
    box = drawn(page)
    assert near(box[0], a[0]) and near(box[1], a[1]) and near(box[2], b[0] - 1) and near(box[3], b[1] - 1)
    # drag the right edge 10% of the width further
    page.mouse.move(*on_screen(rect, w, h, box[2] + 1, (box[1] + box[3]) / 2))
    page.mouse.down()
    page.mouse.move(*on_screen(rect, w, h, box[2] + 1 + 0.1 * w, (box[1] + box[3]) / 2), steps=5)
    page.mouse.up()
    after_drag = drawn(page)
    assert near(after_drag[2], box[2] + 0.1 * w) and after_drag[:2] == box[:2] and after_drag[3] == box[3]
    assert page.get_attribute("button.edge[data-edge=right]", "aria-pressed") == "true"  # the edge it took
    # keyboard: right edge 3 px left and 10 px right, then pick the top edge with 'e' and move it up 1 px
    for key in ("ArrowLeft", "ArrowLeft", "ArrowLeft", "Shift+ArrowRight"):
        page.keyboard.press(key)
    page.keyboard.press("e")  # right -> bottom
    page.keyboard.press("Shift+e")  # bottom -> right
    page.keyboard.press("Shift+e")  # right -> top
    assert page.get_attribute("button.edge[data-edge=top]", "aria-pressed") == "true"
    page.keyboard.press("ArrowUp")
    want = [after_drag[0], after_drag[1] - 1, after_drag[2] + 7, after_drag[3]]
    assert drawn(page) == want
    assert page.input_value("#x2") == str(want[2])  # the form fields follow
    page.keyboard.press("Enter")
    page.wait_for_url("**/boxes/work?kind=draw&saved=1")
    [(_, *stored)] = served.boxes_of(wid)
    assert stored == want  # images are served at full size: served pixels = stored pixels
    # keyboard only, on the next image: 'n' puts a box in the middle, its left edge selected
    w, h, _ = image_frame(page)
    page.keyboard.press("n")
    page.keyboard.press("Shift+ArrowLeft")
    js_round = lambda v: math.floor(v + 0.5)  # noqa: E731 (Math.round, not banker's rounding)
    assert drawn(page) == [
        js_round(w / 4) - 10,
        js_round(h / 4),
        js_round(3 * w / 4) - 1,
        js_round(3 * h / 4) - 1,
    ]
    assert page.errors == []  # no script error on any page
    context.close()


def touch(cdp: Any, kind: str, points: list[tuple[float, float]]) -> None:
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y} for x, y in points]})


def swipe(cdp: Any, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
    touch(cdp, "touchStart", [start])
    for i in range(1, steps + 1):
        t = i / steps
        touch(cdp, "touchMove", [(start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)])
    time.sleep(0.15)  # the finger rests before it lifts: no fling, whose cancelling would eat the next tap
    touch(cdp, "touchMove", [end])
    touch(cdp, "touchEnd", [])


def test_finger_draws_a_box_on_a_phone(served: Served, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page, wid = served.login(context, "finger", "draw")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # fits the phone
    w, h, rect = image_frame(page)
    top = "document.getElementById('photo').getBoundingClientRect().top"
    scrolled = page.evaluate(top)
    cdp = context.new_cdp_session(page)
    a, b = (0.15 * w, 0.2 * h), (0.6 * w, 0.55 * h)
    swipe(cdp, on_screen(rect, w, h, *a), on_screen(rect, w, h, *b))
    assert page.get_attribute("#draw", "data-pointer") == "touch"  # the page's touch path drew it
    assert page.evaluate(top) == scrolled  # the finger drew; the image did not move under it
    box = drawn(page)
    assert near(box[0], a[0]) and near(box[1], a[1]) and near(box[2], b[0] - 1) and near(box[3], b[1] - 1)
    # pull the bottom edge down with the finger (a wider grab zone than the mouse's)
    bottom = (box[0] + box[2]) / 2, box[3] + 1
    swipe(cdp, on_screen(rect, w, h, *bottom), on_screen(rect, w, h, bottom[0], bottom[1] + 0.2 * h), steps=5)
    moved = drawn(page)
    assert moved[:3] == box[:3] and near(moved[3], box[3] + 0.2 * h)
    page.locator("#send").tap()
    page.wait_for_url("**/boxes/work?kind=draw&saved=1")
    [(_, *stored)] = served.boxes_of(wid)
    assert stored == moved
    assert page.errors == []  # no script error on any page
    context.close()


def test_both_verification_grids(served: Served, browser: Any) -> None:
    svc = served.boxes
    drawer = svc.crowd.invite("drawer").worker_id
    while (view := svc.next_task(drawer, "draw")) is not None:
        x = 5 + 3 * view.id
        svc.submit(drawer, view.id, {"box": [x, 8, x + 40, 60]})
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page, wid = served.login(context, "verifier", "quality")
    # quality: tick the first box with the keyboard and the last one by clicking its tile
    assert image_loads(page)
    ticks = page.locator('input[name="good"]')
    ids = [int(ticks.nth(i).get_attribute("value") or 0) for i in range(ticks.count())]
    assert len(ids) == len(served.boxes_of(drawer)) == 8 - IMPORTED
    assert page.locator("rect.judged").count() == len(ids)
    page.keyboard.press("1")
    page.locator(f'label.tile:has(input[value="{ids[-1]}"])').click()
    assert page.locator("#ticked").inner_text() == "2"
    page.click("#send")
    page.wait_for_url("**/boxes/work?kind=quality&saved=1")
    assert served.votes_of(wid, "quality") == {i: i in (ids[0], ids[-1]) for i in ids}
    # coverage: the images that came with one box each; tick the second one
    page.goto(f"{served.server.url}/boxes/work?kind=coverage")
    covered = page.locator('input[name="covered"]')
    images = [int(covered.nth(i).get_attribute("value") or 0) for i in range(covered.count())]
    assert len(images) == IMPORTED and page.locator("rect.accepted").count() == IMPORTED
    page.locator(f'label.tile:has(input[value="{images[1]}"])').click()
    page.keyboard.press("Enter")
    page.wait_for_url("**/boxes/work?kind=coverage&saved=1")
    assert served.votes_of(wid, "coverage") == {i: i == images[1] for i in images}
    assert page.errors == []  # no script error on any page
    context.close()
