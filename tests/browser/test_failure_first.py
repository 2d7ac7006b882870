"""Failure first, in Chromium: a real worker runs a pipeline whose step prints 3,000 lines
and then raises. The run page's banner quotes the exception line and names the step; its
link opens the step's panel on the Logs tab, with the same line in the task's banner and the
log scrolled so the traceback's last line is in view and highlighted; the log can be
searched (matches highlighted, next/previous) and downloaded whole. No CSP violation.

No timed assertions: Playwright's expect() waits for each state to appear.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.services import run_create
from tests.browser.conftest import NARROW, WIDE
from tests.factories import UserFactory
from tests.live import start_worker, wait_for_run
from tests.runs.ir import container_pipeline

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.slow]

PASSWORD = "pw-canal-test"
EXCEPTION = "ValueError: bad input: record 3000 has no id"
STEP = (
    "import sys\n"
    "for i in range(3000):\n"
    "    print(f'processing record {i}: ok')\n"
    "print('WARNING: record 2999 looks odd', file=sys.stderr)\n"
    "def load(n):\n"
    "    raise ValueError(f'bad input: record {n} has no id')\n"
    "load(3000)\n"
)


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _shots(page: Any, directory: Path, name: str) -> None:
    for label, size in (("1280", WIDE), ("800", NARROW)):
        page.set_viewport_size(size)
        page.screenshot(path=str(directory / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(WIDE)


def _in_view(page: Any, inner: str, outer: str) -> bool:
    """Whether the element ``inner`` lies within the visible box of its scrolling ``outer``."""
    return bool(
        page.evaluate(
            """([inner, outer]) => {
                const a = document.querySelector(inner), b = document.querySelector(outer);
                if (!a || !b) { return false; }
                const r = a.getBoundingClientRect(), v = b.getBoundingClientRect();
                return r.height > 0 && r.top >= v.top - 1 && r.bottom <= v.bottom + 1;
            }""",
            [inner, outer],
        )
    )


def test_failed_step_explains_itself(live_stack, browser_page, screenshot_dir) -> None:  # type: ignore[no-untyped-def]
    expect = _expect()
    page, base = browser_page, live_stack.url
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    UserFactory(username="failer")
    spec = container_pipeline(
        "fails-loudly",
        {
            "prepare": {"command": ["echo", "ready"]},
            "load-data": {"command": ["python3", "-c", STEP], "after": ["prepare"]},
        },
    )
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR), actor=OPERATOR, display_name="fails", pipeline_spec=spec
    )
    assert wait_for_run(run.pk, timeout=240).state == RuntimeState.FAILED

    page.goto(f"{base}/login/")
    page.fill("#id_username", "failer")
    page.fill("#id_password", PASSWORD)
    page.click("main form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/runs/$"))
    page.goto(f"{base}/runs/{run.pk}/")

    # The run's banner: the step's name and its exception line.
    banner = page.locator("#run-error")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Step load-data failed:")
    expect(banner.locator("[data-failure-text]")).to_contain_text(EXCEPTION)
    _shots(page, screenshot_dir, "failure-01-run-banner")

    # Its link opens the step's panel on the Logs tab.
    banner.locator("a[data-failed-task]").click()
    panel = page.locator("#node-panel-body .panel")
    expect(panel).to_have_attribute("data-task-state", "FAILED")
    expect(panel.locator("[data-task-failure]")).to_contain_text(EXCEPTION)
    expect(page.locator("#node-panel [data-ptab=logs]")).to_have_class(re.compile(r"\bactive\b"))
    log = page.locator("#node-panel pre.log-view")
    expect(log).to_be_visible()
    expect(log).to_have_attribute("data-log-enhanced", "1", timeout=60_000)
    assert page.url.endswith(f"?task={panel.get_attribute('data-task-id')}#graph")

    # The log is scrolled to the exception line, which is marked; the traceback is an error.
    failure = log.locator(".log-failure")
    expect(failure).to_have_text(EXCEPTION)
    assert _in_view(page, "#node-panel pre.log-view .log-failure", "#node-panel pre.log-view")
    assert page.evaluate("document.querySelector('#node-panel pre.log-view').scrollTop") > 0
    expect(log.locator(".log-error", has_text="Traceback (most recent call last):")).to_have_count(1)
    expect(log.locator(".log-warning")).to_have_text("WARNING: record 2999 looks odd")
    _shots(page, screenshot_dir, "failure-02-task-log")

    # Search: a term far above the error; matches highlighted, next/previous move between them.
    search = page.locator("#node-panel [data-log-search]")
    # Typing searches (after a short pause); Enter then goes to the next match, as a
    # browser's find bar does. The test waits for the search rather than racing the
    # pause with an Enter, which on a slow machine may come after it.
    search.fill("record 12")
    matches = log.locator("mark.log-match")
    # record 12, 120-129, 1200-1299: 111 lines
    expect(page.locator("#node-panel [data-log-matches]")).to_have_text("1 / 111")
    expect(matches).to_have_count(111)
    expect(log.locator("mark.log-match.current")).to_have_text("record 12")
    assert _in_view(page, "#node-panel pre.log-view mark.current", "#node-panel pre.log-view")
    search.press("Enter")
    expect(page.locator("#node-panel [data-log-matches]")).to_have_text("2 / 111")
    page.click("#node-panel [data-log-next]")
    expect(page.locator("#node-panel [data-log-matches]")).to_have_text("3 / 111")
    assert _in_view(page, "#node-panel pre.log-view mark.current", "#node-panel pre.log-view")
    for _ in range(3):
        page.click("#node-panel [data-log-prev]")
    expect(page.locator("#node-panel [data-log-matches]")).to_have_text("111 / 111")
    search.fill("no such text anywhere")
    expect(page.locator("#node-panel [data-log-matches]")).to_have_text("no matches")
    search.fill("processing record 7:")
    expect(page.locator("#node-panel [data-log-matches]")).to_have_text("1 / 1")
    _shots(page, screenshot_dir, "failure-03-log-search")

    # The whole log can be downloaded: all 3,000 lines and the traceback.
    with page.expect_download() as download_info:
        page.click("#node-panel [data-log-download]")
    body = Path(download_info.value.path()).read_text()
    assert body.count("processing record") == 3000 and EXCEPTION in body

    # Reloading the page on the task's URL opens the same panel on its log.
    page.reload()
    expect(page.locator("#node-panel [data-ptab=logs]")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("#node-panel pre.log-view .log-failure")).to_have_text(EXCEPTION)
    assert _in_view(page, "#node-panel pre.log-view .log-failure", "#node-panel pre.log-view")

    # A step that succeeded still opens on its first tab.
    page.locator("#dag-canvas g[data-node='root/prepare']").click()
    expect(page.locator("#node-panel-body .panel")).to_have_attribute("data-task-state", "SUCCEEDED")
    expect(page.locator("#node-panel [data-ptab=io]")).to_have_class(re.compile(r"\bactive\b"))

    assert page.canal_errors == []  # type: ignore[attr-defined]
    assert [line for line in console if re.search(r"Content[ -]Security[ -]Policy", line)] == []


def test_banner_appears_when_a_run_fails_while_its_page_is_open(  # type: ignore[no-untyped-def]
    live_stack, browser_page, live_log_dir
) -> None:
    expect = _expect()
    page, base = browser_page, live_stack.url
    UserFactory(username="watcher")
    live_stack.worker.stop()  # the run stays pending until the page is open
    spec = container_pipeline("fails-later", {"boom": {"command": ["sh", "-c", "echo go; no-such-tool-xyz"]}})
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR), actor=OPERATOR, display_name="later", pipeline_spec=spec
    )
    page.goto(f"{base}/login/")
    page.fill("#id_username", "watcher")
    page.fill("#id_password", PASSWORD)
    page.click("main form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/runs/$"))
    page.goto(f"{base}/runs/{run.pk}/")
    expect(page.locator("#run-page")).to_have_attribute("data-active", "1")
    expect(page.locator("#run-error")).to_be_hidden()
    page.evaluate("window.__canalNoReload = 'still here'")

    worker = start_worker(live_log_dir)
    try:
        banner = page.locator("#run-error")
        expect(banner.locator("[data-failure-text]")).to_contain_text(
            "sh: 1: no-such-tool-xyz: not found", timeout=240_000
        )
        expect(banner).to_contain_text("Step boom failed:")
        assert page.evaluate("window.__canalNoReload") == "still here"
        banner.locator("a[data-failed-task]").click()
        expect(page.locator("#node-panel [data-ptab=logs]")).to_have_class(re.compile(r"\bactive\b"))
        expect(page.locator("#node-panel pre.log-view .log-failure")).to_have_text(
            "sh: 1: no-such-tool-xyz: not found"
        )
    finally:
        worker.discard()
    assert page.canal_errors == []  # type: ignore[attr-defined]
