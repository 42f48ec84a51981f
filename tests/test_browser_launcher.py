"""Every browser test launches Chromium through `_browser.launch_chromium`: a missing browser is one clear
failure naming the package, never a Playwright traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import _browser

TESTS = Path(__file__).parent


def test_missing_chromium_fails_with_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_browser, "CHROMIUM", tmp_path / "no-chromium")

    class Untouched:
        @property
        def chromium(self) -> object:
            raise AssertionError("Playwright must not be asked to launch a missing browser")

    with pytest.raises(pytest.fail.Exception) as failed:
        _browser.launch_chromium(Untouched())
    assert "no-chromium is missing: install Debian's chromium package" in str(failed.value)


def test_browser_tests_launch_through_the_shared_launcher() -> None:
    for path in sorted(TESTS.glob("test_*.py")):
        text = path.read_text()
        if path.name != Path(__file__).name and "sync_playwright" in text:
            assert "launch_chromium(" in text, path.name
            assert not re.search(r"\.chromium\.launch\(", text), path.name
