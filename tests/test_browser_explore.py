"""Browsing a release in a real browser (Debian's Chromium driven by Playwright) against the app served by
uvicorn on 127.0.0.1: open the tree, follow a synset, page its grid, open an image and its provenance."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _browser import launch_chromium
from _release_fixtures import WNIDS, build_release_project
from synsetforge.releases.release import create_release
from synsetforge.releases.splits import SplitSpec
from synsetforge.web.app import create_app
from synsetforge.web.server import ThreadedServer

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ThreadedServer]:
    project, _ = build_release_project(tmp_path / "p")
    with project:
        create_release(project, "v1", split=SplitSpec(val=2, test=3), seed=3)
        with ThreadedServer(create_app(project)) as server:
            yield server


@pytest.fixture
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as pw:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()


def _eventually(page: Any, expression: str, timeout_s: float = 15.0) -> bool:
    """Poll a JS expression from Python (the pages' CSP forbids the eval that wait_for_function uses)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.evaluate(expression):
            return True
        time.sleep(0.1)
    return False


def test_browse_tree_then_synset_then_image(served: ThreadedServer, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(15000)
    failed: list[str] = []  # every page, image and stylesheet answers (the browser's own favicon aside)
    page.on(
        "response", lambda r: failed.append(r.url) if r.status >= 400 and "favicon" not in r.url else None
    )
    page.goto(f"{served.url}/explore")
    assert page.locator("h1").inner_text() == "Release v1"
    # the stylesheet loaded under the strict CSP (the tree list loses its bullets)
    assert page.evaluate("getComputedStyle(document.querySelector('#tree')).listStyleType") == "none"
    # dog breeds sit deep under a closed <details>: the link is hidden until its branches are opened
    link = page.locator(f'a[href="/explore/v1/synset/{WNIDS[1]}"]')
    assert not link.is_visible()
    while not link.is_visible():
        page.locator("#tree details:not([open]) > summary").filter(has_text="(").first.click()
    link.click()
    page.wait_for_url(f"**/explore/v1/synset/{WNIDS[1]}")
    assert "English springer" in page.locator("#synset-name").inner_text()
    assert "black-and-white" in page.locator("#gloss").inner_text()
    tiles = page.locator("#grid img")
    assert tiles.count() >= 5
    # thumbnails are lazy-loaded: wait (bounded) until every one has decoded; a broken image never does
    assert _eventually(
        page,
        "Array.from(document.querySelectorAll('#grid img')).every(i => i.complete && i.naturalWidth > 0)",
    )
    # paging: 3 per page, next then previous
    page.goto(f"{served.url}/explore/v1/synset/{WNIDS[1]}?per_page=3")
    first = page.locator("#grid a").first.get_attribute("href")
    page.click('a[rel="next"]')
    page.wait_for_url("**page=2**")
    assert "page 2 of" in page.locator("#pager").inner_text()
    assert page.locator("#grid a").first.get_attribute("href") != first
    page.locator("#grid a").first.click()
    page.wait_for_url("**/explore/v1/image/*")
    assert page.locator("h1").inner_text().startswith("Image ")
    assert _eventually(page, "document.querySelector('#picture').naturalWidth > 0")
    row = page.locator("#provenance tbody tr").first.inner_text()
    assert WNIDS[1] in row and "query for" in row
    # search from the header
    page.fill('input[name="q"]', "tench")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=tench")
    assert page.locator("#hits li").count() == 1
    assert not failed, failed
