"""The admin tables in Chromium: at every window width every column and every Block button is on the page
(no table wider than its box, no button past the window's edge); narrow windows show each row as a card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _browser import launch_chromium
from synsetforge.crowd.gold import gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import Project
from synsetforge.web.app import create_app
from synsetforge.web.server import ThreadedServer

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser, pytest.mark.slow]
SQUARE = "n13878634"
WIDTHS = [1600, 1280, 1061, 1060, 1024, 900, 800, 761, 760, 600, 390, 320]
# per table: how far its content overflows its box, and the right edge of its buttons
OVERFLOW = """() => [...document.querySelectorAll('table')].map(t => ({
  id: t.id,
  overflow: t.parentElement.scrollWidth - t.parentElement.clientWidth,
  right: Math.max(t.getBoundingClientRect().right, ...[...t.querySelectorAll('button')].map(
      b => b.getBoundingClientRect().right)),
  buttons: t.querySelectorAll('button').length,
  window: document.documentElement.clientWidth,
}))"""


@pytest.fixture
def admin_site(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with Project.init(tmp_path / "p") as p:
        p.add_synsets([SQUARE])
        add_synthetic_candidates(p, [SQUARE], 12, precision=0.4)
        gold_from_ground_truth(p, per_synset=4)
        app = create_app(p, CrowdSettings(), seed=7)
        service = app.state.service
        for name in ("Ada Lovelace-Byron of the very long name", "bea", "marketplace person"):
            service.invite(name)
        blocked = service.invite("carl")
        service.block(blocked.worker_id, "failed 5 of 6 gold images on the square synset, twice in a row")
        with ThreadedServer(app) as server:
            yield server.url, service.create_token("admin")


def _sign_in(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/admin/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/admin")


def test_admin_tables_fit_every_window_width(admin_site: tuple[str, str]) -> None:
    url, token = admin_site
    with playwright_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            _sign_in(page, url, token)
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                for path in ("/admin", "/admin/workers", f"/admin/synsets/{SQUARE}"):
                    page.goto(url + path)
                    tables = page.evaluate(OVERFLOW)
                    assert tables, path
                    for t in tables:
                        where = f"{path} #{t['id']} at {width}px"
                        assert t["overflow"] <= 0, f"{where}: {t['overflow']}px cut off"
                        assert t["right"] <= t["window"], f"{where}: ends at {t['right']} of {t['window']}px"
                        if t["id"] == "workers":
                            assert t["buttons"] == 4, where
            page.set_viewport_size({"width": 390, "height": 900})
            page.goto(f"{url}/admin/workers")
            # a card names each value: the label comes from the header
            label = page.evaluate(
                "getComputedStyle(document.querySelector('#workers td[data-label=\"status\"]'), '::before')"
                ".content"
            )
            assert label == '"status"'
            assert page.locator("#workers button", has_text="Unblock").is_visible()
        finally:
            browser.close()
