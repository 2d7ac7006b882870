"""The dashboard under its Content-Security-Policy, in Chromium: a person logs in,
uploads a pipeline, runs it, opens the run's HTML artifact, switches tabs, previews a
schedule, deletes a recurring run (after a confirmation), opens the admin and the API
docs. Chromium must report no CSP violation anywhere (pages and frames), the pages'
script must still do its work, and the HTML artifact must render and run its own
script in its sandboxed frame, without reaching the page around it.

No timed assertions: Playwright's expect() waits for each state to appear.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.schedules.models import RecurringRun
from tests.factories import RecurringRunFactory, UserFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "pw-canal-test"
RUN_WAIT = 180_000  # ms

# The artifact's own script: it may run (its frame allows scripts), but reaching the
# page around it must fail with a SecurityError (an opaque origin).
HTML_ARTIFACT = (
    "<html><body><p id='result'>script did not run</p><p id='styled' style='color: rgb(1, 2, 3)'>x</p>"
    "<script>var out = document.getElementById('result');"
    "try { out.textContent = 'READ ' + parent.document.title; }"
    "catch (e) { out.textContent = 'blocked: ' + e.name; }"
    "</script></body></html>"
)


REPORT_TASK = {"componentRef": {"name": "comp-report"}, "taskInfo": {"name": "report"}}


def _pipeline_file(directory: Path) -> Path:
    """One container step that writes an HTML artifact (no task environment to build)."""
    spec = {
        "pipelineInfo": {"name": "csp-report"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.6",
        "components": {
            "comp-report": {
                "executorLabel": "exec-report",
                "outputDefinitions": {
                    "artifacts": {
                        "page": {"artifactType": {"schemaTitle": "system.HTML", "schemaVersion": "0.0.1"}}
                    }
                },
            }
        },
        "deploymentSpec": {
            "executors": {
                "exec-report": {
                    "container": {
                        "image": "alpine:3",
                        "command": [
                            "sh",
                            "-c",
                            'mkdir -p "$(dirname "$0")" && printf "%s" "$1" > "$0"',
                            "{{$.outputs.artifacts['page'].path}}",
                            HTML_ARTIFACT,
                        ],
                    }
                }
            }
        },
        "root": {"dag": {"tasks": {"report": REPORT_TASK}}},
    }
    path = directory / "csp_report.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def test_pages_work_under_the_csp_without_violations(live_stack, browser_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    expect = _expect()
    page, base = browser_page, live_stack.url
    console: list[str] = []
    # CSP violations are reported on the console of the frame they happen in; the
    # page's console event carries its frames' messages too.
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))

    def violations() -> list[str]:
        return [line for line in console if re.search(r"Content[ -]Security[ -]Policy", line)]

    UserFactory(username="cspadmin", is_staff=True, is_superuser=True)
    schedule = RecurringRunFactory(display_name="nightly-csp")

    # Log in (the login form, then a redirect to the runs list).
    page.goto(f"{base}/login/")
    page.fill("#id_username", "cspadmin")
    page.fill("#id_password", PASSWORD)
    page.click("main form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/runs/$"))

    # Upload: the pipeline page draws the DAG; clicking a node opens the side panel (script).
    page.goto(f"{base}/pipelines/upload/")
    page.set_input_files("input[name=file]", str(_pipeline_file(tmp_path)))
    page.fill("input[name=name]", "csp-report")
    page.click("main form.form button[type=submit]")
    expect(page.locator("h1")).to_have_text("csp-report")
    page.locator("#dag-canvas g.node").first.click()
    expect(page.locator("#node-panel")).to_be_visible()
    expect(page.locator("#node-panel-body")).to_contain_text("alpine:3")

    # The new-run form: choosing "Recurring" shows the trigger fields, and typing a cron
    # expression refreshes the preview from the server (script + same-origin fetch).
    page.click("text=Create run")
    # The form's script binds its handlers when the page has loaded; a check before
    # that (a busy machine) changes the radio with nobody listening.
    page.wait_for_load_state("load")
    page.check("input[name=run_type][value=recurring]")
    expect(page.locator("[data-show-when-recurring]")).to_be_visible()
    page.check("input[name=trigger-trigger_type][value=CRON]")
    page.fill("input[name=trigger-cron]", "17 3 * * *")
    expect(page.locator("[data-trigger-preview] li").first).to_contain_text("03:17")
    page.check("input[name=run_type][value=one-off]")

    # Run it; the run page polls until the run has finished, without a reload.
    page.click("#start-run")
    expect(page.locator("#run-page")).to_have_attribute("data-finished", "1", timeout=RUN_WAIT)
    expect(page.locator("#run-state .status")).to_have_attribute("data-state", "SUCCEEDED")
    title = page.title()

    # Tabs switch.
    page.click("button[data-tab=tasks]")
    expect(page.locator("#task-table tbody tr")).to_have_count(1)
    expect(page.locator("section[data-tab-panel=graph]")).to_be_hidden()
    page.click("button[data-tab=graph]")
    expect(page.locator("section[data-tab-panel=graph]")).to_be_visible()

    # The task's panel: the HTML artifact renders in its sandboxed frame, its own
    # script runs there (under the frame's policy), and cannot reach this page.
    page.locator("#dag-canvas g[data-node='root/report']").click()
    panel = page.locator("#node-panel-body")
    expect(panel.locator(".panel")).to_have_attribute("data-panel-type", "task")
    panel.locator("[data-ptab=viz]").click()
    iframe = panel.locator("iframe.html-viz")
    expect(iframe).to_have_attribute("sandbox", "allow-scripts")
    expect(iframe).to_have_attribute("src", re.compile(r"^/artifacts/[^/]+/frame/0/$"))
    frame = page.frame_locator("iframe.html-viz")
    expect(frame.locator("#result")).to_have_text(re.compile(r"^blocked: SecurityError"))
    expect(frame.locator("#styled")).to_have_css("color", "rgb(1, 2, 3)")  # its inline style applies
    assert page.title() == title

    # The artifact's own page draws the same frame.
    page.goto(f"{base}/artifacts/")
    page.locator("table.table tbody tr a", has_text="page").first.click()
    expect(page.frame_locator("iframe.html-viz").locator("#result")).to_have_text(
        re.compile(r"^blocked: SecurityError")
    )

    # Lists.
    for path, heading in (
        ("/runs/", "Runs"),
        ("/experiments/", "Experiments"),
        ("/pipelines/", "Pipelines"),
        ("/recurring-runs/", "Recurring runs"),
        ("/artifacts/", "Artifacts"),
    ):
        page.goto(f"{base}{path}")
        expect(page.locator("h1")).to_contain_text(heading)

    # A recurring run's Delete asks first (the confirmation is the page's script, no
    # inline handler): dismissed, nothing happens; accepted, it is deleted.
    page.goto(f"{base}/recurring-runs/{schedule.pk}/")
    answers = iter([False, True])
    page.on("dialog", lambda dialog: dialog.accept() if next(answers) else dialog.dismiss())
    page.click("form[data-confirm] button.btn-danger")
    expect(page.locator("h1")).to_contain_text("nightly-csp")
    assert RecurringRun.objects.filter(pk=schedule.pk).exists()
    page.click("form[data-confirm] button.btn-danger")
    expect(page).to_have_url(re.compile(r"/recurring-runs/$"))
    assert not RecurringRun.objects.filter(pk=schedule.pk).exists()

    # The admin, and the API's Swagger UI (its own scripts and styles, from the sidecar).
    page.goto(f"{base}/admin/")
    expect(page.locator("#site-name")).to_contain_text("Canal administration")
    page.goto(f"{base}/admin/runs/run/")
    expect(page.locator("#result_list")).to_be_visible()
    page.goto(f"{base}/apis/v2beta1/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Canal API")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()

    assert violations() == [], violations()
    assert page.canal_errors == []  # type: ignore[attr-defined]
