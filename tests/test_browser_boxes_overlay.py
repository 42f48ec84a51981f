"""The explorer's box overlay in a real browser (Debian's Chromium through Playwright): on a desktop window
and on a narrow one (where the picture is shown smaller than stored) the drawn rectangle lies where the
frozen box lies on the DISPLAYED picture."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _browser import launch_chromium
from synsetforge.boxes.importing import import_boxes
from synsetforge.releases.release import create_release
from synsetforge.releases.splits import SplitSpec
from synsetforge.web.app import create_app
from synsetforge.web.server import ThreadedServer
from test_boxes_io import DATA, make_project
from test_release_boxes import image_of

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser, pytest.mark.slow]

# the stored springer_01.jpg is 320x240; its frozen box (from the COCO fixture) is x 50..149, y 25..99
STORED = (320, 240)
BOX = (50, 25, 100, 75)  # x, y, width, height in stored pixels


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ThreadedServer, int]]:
    with make_project(tmp_path / "p") as p:
        import_boxes(p, DATA / "instances_val.json", "coco")
        create_release(p, "v1", split=SplitSpec(val=0, test=0))
        image = image_of(p, "n02102040/springer_01.jpg")
        with ThreadedServer(create_app(p)) as server:
            yield server, image


def _loaded(page: Any, timeout_s: float = 15.0) -> None:
    """Wait (from Python: the CSP forbids eval) until the picture has decoded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.evaluate(
            "document.getElementById('picture').complete && document.getElementById('picture').naturalWidth > 0"
        ):
            return
        time.sleep(0.1)
    raise AssertionError("the picture did not load")


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 200, "height": 600}])
def test_overlay_rect_sits_on_the_displayed_box(
    served: tuple[ThreadedServer, int], viewport: dict[str, int]
) -> None:
    server, image = served
    with playwright_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport=viewport)
            page.goto(f"{server.url}/explore/v1/image/{image}")
            _loaded(page)
            pic = page.locator("#picture").bounding_box()
            rect = page.locator("#boxes rect").first.bounding_box()
        finally:
            browser.close()
    scale = pic["width"] / STORED[0]
    assert pic["height"] == pytest.approx(STORED[1] * scale, abs=1.0)
    if viewport["width"] < STORED[0]:
        assert scale < 0.9  # the phone shows the picture smaller than stored: the overlay must follow
    # stroke is 2 CSS px wide, centred on the edge: allow 1.5 px either way
    assert rect["x"] - pic["x"] == pytest.approx(BOX[0] * scale, abs=1.5)
    assert rect["y"] - pic["y"] == pytest.approx(BOX[1] * scale, abs=1.5)
    assert rect["width"] == pytest.approx(BOX[2] * scale, abs=2.5)
    assert rect["height"] == pytest.approx(BOX[3] * scale, abs=2.5)
