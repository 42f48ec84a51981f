"""Login CSRF in a real browser (Debian's Chromium): a page on another site that auto-submits our login
forms with the attacker's own token must not sign the visitor in, and a foreign logout form must not sign
them out; the real forms, filled in on our pages, still work."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _browser import launch_chromium
from _challenge_fixtures import build_world, make_challenge, team_with_accounts
from synsetforge.web.app import create_app
from synsetforge.web.server import ThreadedServer

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser, pytest.mark.slow]
EVIL = "http://evil.test"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ThreadedServer, str, str, str]]:
    """The app, an admin token, the visitor's participant token and the attacker's."""
    world = build_world(tmp_path / "w", n_train=2, n_val=1, n_test=3)
    make_challenge(world)
    ((_, visitor),) = team_with_accounts(world, "visitors")
    ((_, attacker),) = team_with_accounts(world, "attackers")
    app = create_app(world.project)
    admin = app.state.service.create_token("admin")
    with ThreadedServer(app) as server:
        yield server, admin, visitor, attacker
    world.close()


def forged(page: Any, base: str, path: str, fields: dict[str, str]) -> int:
    """Open a page of another site that at once posts a form to our `path`; the status of our answer."""
    inputs = "".join(f'<input name="{k}" value="{html.escape(v)}">' for k, v in fields.items())
    form = f'<form method="post" action="{base}{path}">{inputs}</form>'
    body = f"{form}<script>document.forms[0].submit()</script>"
    page.route(f"{EVIL}/**", lambda route: route.fulfill(body=body, content_type="text/html"))
    try:
        with page.expect_response(lambda r: r.url == f"{base}{path}") as answer:
            page.goto(f"{EVIL}/innocent")
        page.wait_for_load_state()
        return int(answer.value.status)
    finally:
        page.unroute(f"{EVIL}/**")


def cookie_names(page: Any) -> set[str]:
    return {c["name"] for c in page.context.cookies()}


def test_foreign_pages_cannot_sign_a_visitor_in_or_out(served: tuple[ThreadedServer, str, str, str]) -> None:
    server, admin, visitor, attacker = served
    base = server.url
    with playwright_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            assert forged(page, base, "/challenges/shapes/login", {"token": attacker}) == 403
            assert "sf_participant" not in cookie_names(page)
            page.goto(f"{base}/challenges/shapes/submit")
            assert page.locator("text=attackers").count() == 0 and page.locator("#file").count() == 0

            assert forged(page, base, "/admin/login", {"token": admin}) == 403
            assert "sf_admin" not in cookie_names(page)
            page.goto(f"{base}/admin")
            assert page.url == f"{base}/admin/login"

            page.goto(f"{base}/challenges/shapes/login")  # the real form still works
            page.fill("#token", visitor)
            page.click("#login")
            page.wait_for_url(f"{base}/challenges/shapes/submit")
            assert page.locator(".who strong").inner_text() == "visitors"

            assert forged(page, base, "/challenges/shapes/logout", {}) == 403
            page.goto(f"{base}/challenges/shapes/submit")
            assert page.locator(".who strong").inner_text() == "visitors"  # still signed in
            page.click("text=Log out")  # our own logout button
            page.wait_for_url(f"{base}/challenges/shapes")
            assert "sf_participant" not in cookie_names(page)
        finally:
            browser.close()
