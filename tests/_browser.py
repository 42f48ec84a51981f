"""Debian's Chromium for the Playwright tests: one launcher, so a missing browser is one clear failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium browser; fails the test with what to install when Debian's is missing."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package (make test does)", pytrace=False
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
