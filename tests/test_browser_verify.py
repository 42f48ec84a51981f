"""A worker verifies images in a real browser (Debian's Chromium driven by Playwright), against the app
served by uvicorn on 127.0.0.1: invite link, ticking with the mouse and the keyboard, submit, votes in the
store; a worker who fails the gold images is blocked and sees a clear page. Phone-sized viewport."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from _browser import launch_chromium
from synsetforge.crowd.drive import load_truth
from synsetforge.crowd.gold import gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app
from synsetforge.web.server import ThreadedServer

playwright_api = pytest.importorskip("playwright.sync_api")
SQUARE = "n13878634"
pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Project, ThreadedServer]]:
    with Project.init(tmp_path / "p") as p:
        p.add_synsets([SQUARE])
        add_synthetic_candidates(p, [SQUARE], 30, precision=0.4)  # real rendered JPEGs
        gold_from_ground_truth(p, per_synset=10)
        app = create_app(
            p, CrowdSettings(grid_size=12, gold_per_task=2, block_min_gold=4, block_threshold=0.6), seed=7
        )
        with ThreadedServer(app) as server:
            yield p, server


@pytest.fixture
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as pw:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()


def votes_of(p: Project, worker_id: int) -> dict[int, bool]:
    with p.session() as s:
        rows = s.execute(
            select(schema.Vote.candidate_id, schema.Vote.label).where(schema.Vote.worker_id == worker_id)
        )
        return {int(c): bool(label) for c, label in rows}


def test_worker_ticks_images_and_submits(served: tuple[Project, ThreadedServer], browser: object) -> None:
    project, server = served
    svc = server.server.config.app.state.service
    worker = svc.invite("ann")
    truth = load_truth(project)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{server.url}/invite/{worker.token}")
    page.wait_for_url(f"{server.url}/work")
    assert "square" in page.locator("h1").inner_text()
    boxes = page.locator('input[name="yes"]')
    assert boxes.count() == 12
    ids = [int(boxes.nth(i).get_attribute("value") or 0) for i in range(12)]
    # every image loaded (served to this worker from the blob store)
    assert page.evaluate(
        "Array.from(document.querySelectorAll('.tile img')).every(i => i.complete && i.naturalWidth > 0)"
    )
    # fits a phone: no sideways scrolling
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    wanted = {i for i in ids if truth[i]}
    for k, cid in enumerate(ids):
        if cid in wanted and k > 0:
            page.locator(f'label.tile:has(input[value="{cid}"])').click()  # tap the image
    if ids[0] in wanted:
        page.keyboard.press("1")  # keyboard shortcut for the first image
    assert page.locator("#ticked").inner_text() == str(len(wanted))
    page.keyboard.press("Enter")
    page.wait_for_url("**/work/done/*")
    assert "answers saved" in page.content()
    assert votes_of(project, worker.worker_id) == {i: i in wanted for i in ids}
    page.click("#next")
    page.wait_for_url(f"{server.url}/work")
    context.close()


def test_worker_failing_gold_sees_the_blocked_page(
    served: tuple[Project, ThreadedServer], browser: object
) -> None:
    project, server = served
    svc = server.server.config.app.state.service
    worker = svc.invite("careless")
    truth = load_truth(project)
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(15000)
    page.goto(f"{server.url}/invite/{worker.token}")
    boxes = page.locator('input[name="yes"]')
    for i in range(boxes.count()):
        if not truth[int(boxes.nth(i).get_attribute("value") or 0)]:
            boxes.nth(i).check()  # the opposite of the truth, on every image
    page.click("#send")
    page.wait_for_selector("#blocked")
    assert "You can no longer take tasks" in page.locator("h1").inner_text()
    page.goto(f"{server.url}/work")
    assert page.locator("#blocked").is_visible()
    with project.session() as s:
        w = s.get(schema.Worker, worker.worker_id)
        assert w is not None and w.status == "blocked"
        weights = set(s.scalars(select(schema.Vote.weight).where(schema.Vote.worker_id == worker.worker_id)))
    assert weights == {0.0}  # their answers no longer count
