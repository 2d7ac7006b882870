"""The web UI end to end in Chromium, against a live server and a real worker that
executes real pipelines: log in, upload a corpus pipeline, start a run with a changed
parameter, watch its DAG turn green without a reload, read a task's log, compare two
runs; and a pipeline whose artifacts are a confusion matrix, an ROC curve, Markdown
and an HTML page whose script must not reach the page around it.

No timed assertions: Playwright's expect() waits for each state to appear.
"""

# No "from __future__ import annotations": kfp reads the real annotation objects.

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.browser.conftest import NARROW, WIDE
from tests.factories import UserFactory
from tests.live import start_worker
from tests.paths import KFP_VALID

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.slow]

PASSWORD = "pw-canal-test"
RUN_WAIT = 300_000  # ms: a step's first run may build its task environment, on a busy machine


def playwright_expect() -> Any:
    """Playwright's ``expect`` (imported when a browser test runs, not at collection)."""
    from playwright.sync_api import expect

    return expect


def screenshots(page: Any, directory: Path, name: str) -> None:
    """Full-page screenshots at 1280 and 800 px; the page is left at 1280 px."""
    for label, size in (("1280", WIDE), ("800", NARROW)):
        page.set_viewport_size(size)
        page.screenshot(path=str(directory / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(WIDE)


def log_in(page: Any, base: str, username: str) -> None:
    """Sign in through the login form; on the runs list when it returns."""
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main form.form button[type=submit]")
    playwright_expect()(page).to_have_url(re.compile(r"/runs/$"))
    playwright_expect()(page.locator("nav.mainnav")).to_contain_text("Experiments")


def upload_pipeline(page: Any, base: str, path: Path, name: str) -> None:
    """Upload a pipeline file through the upload form; on its page, graph drawn, when it returns."""
    page.goto(f"{base}/pipelines/upload/")
    page.set_input_files("input[name=file]", str(path))
    page.fill("input[name=name]", name)
    page.click("main form.form button[type=submit]")
    playwright_expect()(page.locator("h1")).to_have_text(name)
    playwright_expect()(page.locator("#dag-canvas svg")).to_be_visible()


def wait_run_finished(page: Any) -> None:
    """Wait (up to RUN_WAIT) until the open run page says the run finished."""
    playwright_expect()(page.locator("#run-page")).to_have_attribute("data-finished", "1", timeout=RUN_WAIT)


def test_upload_run_watch_logs_and_compare(live_stack, browser_page, screenshot_dir, live_log_dir) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_expect()
    page, base = browser_page, live_stack.url
    UserFactory(username="uiuser")
    log_in(page, base, "uiuser")
    screenshots(page, screenshot_dir, "01-runs-empty")

    corpus = KFP_VALID / "essential" / "pipeline_with_reused_component.yaml"
    upload_pipeline(page, base, corpus, "reused-adder")
    screenshots(page, screenshot_dir, "02-pipeline-detail")
    # The static node panel: image and command of the clicked node.
    page.locator("#dag-canvas g.node").first.click()
    expect(page.locator("#node-panel")).to_be_visible()
    expect(page.locator("#node-panel-body")).to_contain_text("Image")

    # Stop the worker so the run is certainly still pending when its page opens.
    live_stack.worker.stop()
    page.click("text=Create run")
    expect(page.locator("#id_param__a")).to_have_value("2")
    page.fill("#id_param__a", "10")
    page.fill("#id_display_name", "first run")
    screenshots(page, screenshot_dir, "03-new-run-form")
    page.click("#start-run")
    expect(page.locator("#run-page")).to_have_attribute("data-active", "1")
    expect(page.locator("#dag-canvas g.node.state-SUCCEEDED")).to_have_count(0)
    page.evaluate("window.__canalNoReload = 'still here'")

    worker = start_worker(live_log_dir)
    try:
        # The three steps turn green through polling; the page is never reloaded.
        expect(page.locator("#dag-canvas g.node.state-SUCCEEDED")).to_have_count(3, timeout=RUN_WAIT)
        expect(page.locator("#run-state .status")).to_have_attribute("data-state", "SUCCEEDED")
        assert page.evaluate("window.__canalNoReload") == "still here"
        wait_run_finished(page)
        screenshots(page, screenshot_dir, "04-run-succeeded")

        # The task panel: inputs, outputs, and the log (the executor printed its input).
        page.locator("#dag-canvas g[data-node='root/add-numbers-3']").click()
        panel = page.locator("#node-panel-body .panel")
        expect(panel).to_have_attribute("data-panel-type", "task")
        expect(panel.locator(".io-table").last).to_contain_text("25")  # ((10 + 3) + 5) + 7
        page.locator("#dag-canvas g[data-node='root/add-numbers']").click()
        expect(panel).to_have_attribute("data-node-id", "root/add-numbers")
        page.click("#node-panel [data-ptab=logs]")
        log = page.locator("#node-panel pre.log-view")
        expect(log).to_have_attribute("data-log-complete", "1", timeout=60_000)
        expect(log).to_contain_text('"a": 10')
        expect(page.locator("#node-panel [data-log-download]")).to_have_attribute(
            "href", re.compile(r"/log/download/")
        )
        screenshots(page, screenshot_dir, "05-task-panel-logs")

        # Task list tab: the same DAG as a table.
        page.click("button[data-tab=tasks]")
        expect(page.locator("#task-table tbody tr")).to_have_count(3)
        page.click("button[data-tab=details]")
        expect(page.locator("section[data-tab-panel=details]")).to_contain_text("10")

        # Clone pre-fills the form; change the parameter again and start it.
        page.click("text=Clone")
        expect(page.locator("#id_param__a")).to_have_value("10")
        page.fill("#id_param__a", "1")
        page.fill("#id_display_name", "second run")
        page.click("#start-run")
        wait_run_finished(page)
        expect(page.locator("#run-state .status")).to_have_attribute("data-state", "SUCCEEDED")

        # Compare the two from the runs list.
        page.goto(f"{base}/runs/")
        screenshots(page, screenshot_dir, "06-runs-list")
        page.locator("tr", has_text="first run").locator("input[name=run]").check()
        page.locator("tr", has_text="second run").locator("input[name=run]").check()
        page.click("text=Compare selected")
        expect(page.locator("h1")).to_have_text("Compare 2 runs")
        param_a = page.locator("#compare-params tr", has=page.locator("th", has_text=re.compile(r"^a$")))
        expect(param_a).to_have_class(re.compile(r"\bdiff\b"))
        expect(param_a).to_contain_text("10")
        expect(param_a).to_contain_text("1")
        param_b = page.locator("#compare-params tr", has=page.locator("th", has_text=re.compile(r"^b$")))
        expect(param_b).not_to_have_class(re.compile(r"\bdiff\b"))
        expect(page.locator("#compare-steps tr.diff")).to_have_count(3)  # every output changed
        screenshots(page, screenshot_dir, "07-compare")
    finally:
        worker.stop()
    assert page.canal_errors == []  # type: ignore[attr-defined]


def metrics_pipeline_file(directory: Path) -> Path:
    """A pipeline whose one step logs a confusion matrix, an ROC curve, scalar metrics,
    Markdown with hostile content, and an HTML page that tries to reach its parent."""
    from kfp import compiler, dsl
    from kfp.dsl import HTML, ClassificationMetrics, Markdown, Metrics, Output

    @dsl.component(base_image="python:3.11")
    def evaluate(
        metrics: Output[ClassificationMetrics],
        scalars: Output[Metrics],
        report: Output[Markdown],
        page: Output[HTML],
    ) -> None:
        metrics.log_confusion_matrix(["cat", "dog", "<b>bird</b>"], [[9, 1, 0], [2, 7, 1], [0, 1, 9]])
        metrics.log_roc_curve([0.0, 0.1, 0.3, 1.0], [0.0, 0.6, 0.9, 1.0], [1.0, 0.8, 0.5, 0.0])
        scalars.log_metric("accuracy", 0.833)
        with open(report.path, "w") as fh:
            fh.write(
                "# Report\n\n<script>window.parent.__mdxss = 1</script>\n\n[click](javascript:alert(1))\n"
            )
        with open(page.path, "w") as fh:
            fh.write(
                "<html><body><p id='result'>script did not run</p><script>"
                "var out = document.getElementById('result');"
                "try { out.textContent = 'READ ' + parent.document.title; parent.document.title = 'pwned'; }"
                "catch (e) { out.textContent = 'blocked: ' + e.name; }"
                "</script></body></html>"
            )

    @dsl.pipeline(name="metrics-ui")
    def pipeline() -> None:
        evaluate()

    path = directory / "metrics_ui.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    assert yaml.safe_load(path.read_text())["pipelineInfo"]["name"] == "metrics-ui"
    return path


def test_visualizations_and_html_isolation(live_stack, browser_page, screenshot_dir) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_expect()
    page, base = browser_page, live_stack.url
    UserFactory(username="vizuser")
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = metrics_pipeline_file(Path(tmp))
        log_in(page, base, "vizuser")
        upload_pipeline(page, base, spec_file, "metrics-ui")
    page.click("text=Create run")
    page.click("#start-run")
    wait_run_finished(page)
    expect(page.locator("#run-state .status")).to_have_attribute("data-state", "SUCCEEDED")
    title = page.title()

    page.locator("#dag-canvas g[data-node='root/evaluate']").click()
    panel = page.locator("#node-panel-body")
    panel.locator("[data-ptab=viz]").click()
    # Confusion matrix: a 3x3 heat grid with escaped labels.
    matrix = panel.locator("table.confusion-matrix")
    expect(matrix).to_be_visible()
    expect(matrix.locator("td.cm-cell")).to_have_count(9)
    expect(matrix).to_contain_text("<b>bird</b>")
    # ROC: one polyline with a marker per reading.
    roc = panel.locator("svg.roc-curve")
    expect(roc).to_be_visible()
    expect(roc.locator("polyline")).to_have_count(1)
    expect(roc.locator("circle")).to_have_count(4)
    # Scalar metrics.
    expect(panel.locator(".viz-metrics").first).to_contain_text("accuracy")
    # Markdown: rendered, the script and the javascript: link inert.
    markdown = panel.locator(".markdown-body")
    expect(markdown.locator("h1")).to_have_text("Report")
    expect(markdown.locator("script")).to_have_count(0)
    expect(markdown.locator("a[href^='javascript']")).to_have_count(0)
    assert page.evaluate("window.__mdxss") is None
    # HTML: its script runs in the sandboxed frame but cannot read parent.document.
    frame = page.frame_locator("iframe.html-viz")
    expect(frame.locator("#result")).to_have_text(re.compile(r"^blocked: SecurityError"))
    assert page.title() == title
    iframe = panel.locator("iframe.html-viz")
    expect(iframe).to_have_attribute("sandbox", "allow-scripts")
    screenshots(page, screenshot_dir, "08-visualizations")

    # Opened directly, the HTML artifact is served in a CSP sandbox: its script never runs.
    view_url = panel.locator("a", has_text="Open").first.get_attribute("href")
    response = page.goto(f"{base}{view_url}")
    assert response is not None
    assert response.headers["content-security-policy"].startswith("sandbox")
    expect(page.locator("#result")).to_have_text("script did not run")

    # The artifacts page lists all four, filterable by type, linking to the producer.
    page.goto(f"{base}/artifacts/")
    expect(page.locator("table.table tbody tr")).to_have_count(4)
    page.select_option("select[name=type]", "system.ClassificationMetrics")
    expect(page.locator("table.table tbody tr")).to_have_count(1)
    screenshots(page, screenshot_dir, "09-artifacts")
    page.locator("table.table tbody tr a", has_text="evaluate").click()
    expect(page.locator("#node-panel-body .panel")).to_have_attribute("data-panel-type", "task")
    page.click("#node-panel [data-ptab=viz]")
    expect(page.locator("#node-panel-body table.confusion-matrix")).to_be_visible()

    # Experiments: the Default experiment shows the run's status icon.
    page.goto(f"{base}/experiments/")
    expect(page.locator(".recent-runs .state-icon.state-SUCCEEDED")).to_have_count(1)
    screenshots(page, screenshot_dir, "10-experiments")
    assert page.canal_errors == []  # type: ignore[attr-defined]


def gated_pipeline_file(directory: Path) -> Path:
    """One step that prints, waits for a file the test creates, then prints again."""
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11")
    def wait_for_gate(gate: str) -> str:
        import os
        import time

        print("waiting for the gate", flush=True)
        while not os.path.exists(gate):
            time.sleep(0.1)
        print("gate opened", flush=True)
        return "done"

    @dsl.pipeline(name="gated")
    def pipeline(gate: str) -> None:
        wait_for_gate(gate=gate)

    path = directory / "gated.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    return path


def test_log_tails_live_while_the_step_runs(
    live_stack, browser_page, screenshot_dir, tmp_path, step_shared
) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_expect()
    page, base = browser_page, live_stack.url
    UserFactory(username="tailer")
    gate = step_shared / "gate"  # the step sees only what is shared with it
    log_in(page, base, "tailer")
    upload_pipeline(page, base, gated_pipeline_file(tmp_path), "gated")
    page.click("text=Create run")
    page.fill("#id_param__gate", str(gate))
    page.click("#start-run")
    node = page.locator("#dag-canvas g[data-node='root/wait-for-gate']")
    expect(node).to_have_attribute("data-state", "RUNNING", timeout=RUN_WAIT)
    node.click()
    page.click("#node-panel [data-ptab=logs]")
    log = page.locator("#node-panel pre.log-view")
    expect(log).to_contain_text("waiting for the gate", timeout=RUN_WAIT)
    expect(log).not_to_contain_text("gate opened")
    expect(page.locator("#node-panel [data-log-status]")).to_have_text("tailing…")
    page.evaluate("window.__canalNoReload = 'still here'")
    gate.write_text("open")
    # The rest of the log arrives and the node turns green, with no reload.
    expect(log).to_contain_text("gate opened", timeout=RUN_WAIT)
    expect(node).to_have_attribute("data-state", "SUCCEEDED", timeout=RUN_WAIT)
    wait_run_finished(page)
    assert page.evaluate("window.__canalNoReload") == "still here"
    expect(page.locator("#node-panel pre.log-view")).to_have_attribute("data-log-complete", "1")
    screenshots(page, screenshot_dir, "11-log-tail")
    assert page.canal_errors == []  # type: ignore[attr-defined]
