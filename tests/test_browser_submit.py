"""A participant in Chromium: log in with a token, upload a file, watch it get scored, find the team ranked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _browser import launch_chromium
from _challenge_fixtures import (
    UvicornThread,
    World,
    build_world,
    make_challenge,
    oracle_file,
    team_with_accounts,
    web_app,
)
from synsetforge.benchmark.worker import drain

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path / "proj")
    yield w
    w.close()


def test_upload_in_chromium_is_scored_and_ranked(world: World, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    make_challenge(world, daily_limit=3)
    ((_, rival_token),) = team_with_accounts(world, "rivals")
    ((_, token),) = team_with_accounts(world, "<b>bold</b> team")
    from synsetforge.benchmark.participants import authenticate
    from synsetforge.benchmark.submissions import submit

    rival = authenticate(world.project, rival_token)
    assert rival is not None
    submit(world.project, "shapes", rival, oracle_file(world, "shapes", wrong=9))
    drain(world.project)
    upload = tmp_path / "predictions.txt"
    upload.write_bytes(oracle_file(world, "shapes", wrong=1))
    csp_errors: list[str] = []
    with UvicornThread(web_app(world)) as server, sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
            )
            page.goto(f"{server.url}/challenges/shapes")
            expect(page.locator("h1")).to_have_text("shapes")
            page.click("text=Log in")
            page.fill("#token", token)
            page.click("#login")
            expect(page).to_have_url(f"{server.url}/challenges/shapes/submit")
            expect(page.locator("#left")).to_have_text("3")
            page.set_input_files("#file", str(upload))
            page.click("#send")
            expect(page).to_have_url(f"{server.url}/challenges/shapes/submissions?new=2")
            row = page.locator("#submission-2")
            expect(row).to_contain_text("queued")
            assert drain(world.project)[0].status == "done"  # the worker, off the request path
            expect(row.locator(".status-scored")).to_have_text(
                "scored", timeout=15_000
            )  # the page polls itself
            expect(row).to_contain_text("%")
            page.click("text=Leaderboard")
            first = page.locator("table.leaderboard tr").nth(1)
            expect(first.locator(".team")).to_have_text("<b>bold</b> team")  # escaped, shown as text
            expect(first.locator("td").first).to_have_text("1")
            second = page.locator("table.leaderboard tr").nth(2)
            expect(second.locator(".team")).to_have_text("rivals")
            assert page.locator("b", has_text="bold").count() == 0
            expect(page.locator("header")).to_have_css(
                "display", "flex"
            )  # the stylesheet loaded under the CSP
        finally:
            browser.close()
    assert csp_errors == []
