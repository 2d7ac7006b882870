"""Debugging a step in place, in Chromium against a live server and a real worker: a run
fails because of a parameter value; in the failed step's panel the user edits the value
in "Re-run this step" and submits; the child run's step turns green, and the child and
its origin link to each other.

No timed assertions: Playwright's expect() waits for each state to appear.
"""

# No "from __future__ import annotations": kfp reads the real annotation objects.

import re
from pathlib import Path

import pytest
import yaml

from apps.runs.models import Run
from tests.browser.test_ui_flows import (
    RUN_WAIT,
    log_in,
    playwright_expect,
    screenshots,
    upload_pipeline,
    wait_run_finished,
)
from tests.factories import UserFactory
from tests.runs import rerun_pipelines as rp
from tests.runs.kfp_pipelines import compile_to_ir

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.slow]


def test_rerun_a_failed_step_with_an_edited_parameter(
    live_stack, browser_page, screenshot_dir, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_expect()
    page, base = browser_page, live_stack.url
    UserFactory(username="debugger")  # a member of the default namespace, who may start runs
    spec_file = Path(tmp_path) / "rerun-negative.yaml"
    spec_file.write_text(yaml.safe_dump(compile_to_ir(rp.fails_when_negative)))
    log_in(page, base, "debugger")
    upload_pipeline(page, base, spec_file, "fails-when-negative")
    page.click("text=Create run")
    page.fill("#id_param__x", "-5")
    page.click("#start-run")
    origin_url = page.url
    check = page.locator("#dag-canvas g[data-node='root/check']")
    expect(check).to_have_attribute("data-state", "FAILED", timeout=RUN_WAIT)
    wait_run_finished(page)
    check.click()
    panel = page.locator("#node-panel")
    expect(panel.locator("[data-why]")).to_contain_text("Ran because its upstream task produce succeeded")
    form = panel.locator("form.rerun-form")
    field = form.locator("input[name='rerun-param__x']")
    expect(field).to_have_value("-5")  # what the failed run recorded
    screenshots(page, screenshot_dir, "rerun-1-failed-panel")
    field.fill("4")
    form.locator("[data-rerun-submit]").click()
    # The child run's page: its banner names the task and the origin run, with links.
    expect(page.locator("[data-rerun-banner]")).to_contain_text("Re-run of root/check from")
    expect(page).not_to_have_url(origin_url)
    child_check = page.locator("#dag-canvas g[data-node='root/check']")
    expect(child_check).to_have_attribute("data-state", "SUCCEEDED", timeout=RUN_WAIT)
    wait_run_finished(page)
    child_id = re.search(r"/runs/([0-9a-f-]{36})/", page.url).group(1)  # type: ignore[union-attr]
    child = Run.objects.get(pk=child_id)
    assert child.rerun_of is not None and child.rerun_of_task_key == "root/check"
    # produce was not run again: the child holds the step (and its importer) only.
    expect(page.locator("#dag-canvas g[data-node='root/produce']")).to_have_count(0)
    child_check.click()
    expect(page.locator("#node-panel [data-why]")).to_contain_text("Ran as the re-run of task root/check")
    screenshots(page, screenshot_dir, "rerun-2-child")
    page.click("[data-rerun-banner] a[data-rerun-origin]")
    expect(page).to_have_url(re.compile(rf"/runs/{child.rerun_of_id}/"))
    expect(page.locator("[data-rerun-children]")).to_contain_text(child.display_name)
    expect(page.locator(f"[data-rerun-children] a[href='/runs/{child_id}/']")).to_be_visible()
    screenshots(page, screenshot_dir, "rerun-3-origin")
    assert page.canal_errors == []  # type: ignore[attr-defined]
