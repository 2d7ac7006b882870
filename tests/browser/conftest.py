"""Playwright driving Debian's Chromium against the live stack (web + a real worker).

Skipped, with the reason printed, only when /usr/bin/chromium is absent. Screenshots
go to a temporary directory (or CANAL_SCREENSHOT_DIR), at 1280 and 800 px widths.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 800, "height": 900}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    """Remember each phase's report on the item, so fixtures can tell a failed test."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"canal_report_{report.when}", report)


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    configured = os.environ.get("CANAL_SCREENSHOT_DIR")
    path = Path(configured) if configured else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {path}")
    return path


@pytest.fixture
def browser_page(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Any]:
    """A Chromium page at 1280 px. Playwright's sync API runs an event loop in this
    thread, so the test's own ORM calls need Django's async-safety check relaxed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium to run the browser tests")
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # A busy 2-core CI machine: wait generously for each state (never a timed assertion).
    expect.set_options(timeout=30_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=WIDE)
        context.set_default_timeout(30_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.canal_errors = errors  # type: ignore[attr-defined]
        try:
            yield page
            report = getattr(request.node, "canal_report_call", None)
            if report is not None and report.failed:
                # Leave evidence: where the page was and what it showed.
                shot = tmp_path / "failure.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"\nbrowser test failed at {page.url}; screenshot: {shot}; page errors: {errors}")
        finally:
            context.close()
            browser.close()
