"""Page polish in Chromium: the login card is centred; flash messages can be closed and
success ones fade while errors stay; the pipeline preview's node panel shows readable
fields; bulk delete and the 404 page work under the CSP. No timed assertions."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
import yaml

from apps.core.choices import RuntimeState
from apps.core.models import Membership
from apps.pipelines.models import Pipeline
from tests.factories import PipelineFactory, PipelineVersionFactory, RunFactory, UserFactory

pytestmark = [pytest.mark.browser]

PASSWORD = "pw-canal-test"
IR = """\
components:
  comp-train:
    executorLabel: exec-train
    inputDefinitions:
      parameters:
        epochs: {parameterType: NUMBER_INTEGER}
    outputDefinitions:
      artifacts:
        model: {artifactType: {schemaTitle: system.Model, schemaVersion: 0.0.1}}
deploymentSpec:
  executors:
    exec-train:
      container: {image: python:3.11, command: [python, -c], args: ["print(1)"]}
pipelineInfo: {name: panel}
root:
  dag:
    tasks:
      train:
        componentRef: {name: comp-train}
        inputs: {parameters: {epochs: {componentInputParameter: epochs}}}
        taskInfo: {name: train}
  inputDefinitions:
    parameters:
      epochs: {parameterType: NUMBER_INTEGER, defaultValue: 3.0, isOptional: true}
schemaVersion: 2.1.0
sdkVersion: kfp-2.14.6
"""


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def test_login_flash_messages_node_panel_and_404(live_server, browser_page, transactional_db) -> None:  # type: ignore[no-untyped-def]
    expect = _expect()
    page, base = browser_page, live_server.url
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    UserFactory(username="polish", namespace__role=Membership.Role.OWNER)

    # The login card sits in the middle of the page, at 800 px as at 1280 px.
    for width in (800, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{base}/login/")
        card = page.locator("main section.card").bounding_box()
        assert card is not None
        assert abs((card["x"] + card["width"] / 2) - width / 2) <= 2, (width, card)
    page.fill("#id_username", "polish")
    page.fill("#id_password", PASSWORD)
    page.click("main form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/runs/$"))

    # One bulk delete that succeeds for one pipeline and is refused for another: a
    # success and an error message on one page.
    free = PipelineVersionFactory(pipeline=PipelineFactory(display_name="free-one")).pipeline
    used = PipelineVersionFactory(pipeline=PipelineFactory(display_name="used-one"))
    RunFactory(pipeline_version=used, state=RuntimeState.SUCCEEDED)
    page.goto(f"{base}/pipelines/")
    delete = page.locator("form[data-bulk] button.btn-danger")
    expect(delete).to_be_disabled()  # nothing selected yet
    page.locator("tr", has_text="free-one").locator("input[name=pipeline]").check()
    page.locator("tr", has_text="used-one").locator("input[name=pipeline]").check()
    expect(page.locator("[data-selected-count]")).to_have_text("2 selected")
    page.once("dialog", lambda dialog: dialog.accept())
    delete.click()
    success = page.locator(".messages .msg-success")
    error = page.locator(".messages .msg-error")
    expect(success).to_contain_text("Deleted 1 pipeline: free-one")
    expect(error).to_contain_text("used-one was not deleted")
    expect(success.locator("button.msg-close")).to_have_count(1)
    # The success message fades away by itself; the error is still there after it.
    expect(success).to_have_count(0)
    expect(error).to_be_visible()
    assert not Pipeline.objects.filter(pk=free.pk).exists()
    assert Pipeline.objects.filter(pk=used.pipeline_id).exists()
    error.locator("button.msg-close").click()
    expect(page.locator(".messages")).to_have_count(0)

    # The pipeline preview's node panel: labelled rows, one input per line, no JSON.
    version = PipelineVersionFactory(
        source=IR, pipeline_spec=yaml.safe_load(IR), content_hash=hashlib.sha256(IR.encode()).hexdigest()
    )
    page.goto(f"{base}/pipelines/{version.pipeline_id}/")
    page.locator("#dag-canvas g.node", has_text="train").first.click()
    body = page.locator("#node-panel-body")
    expect(body.locator("dt", has_text="Image")).to_have_count(1)
    expect(body.locator("ul.detail-lines li")).to_contain_text(
        ["epochs: integer ← input epochs", "model: system.Model"]
    )
    expect(body.locator("pre")).to_have_text("python\n-c\nprint(1)")
    assert "{" not in body.inner_text()
    # With JavaScript the versions tab is closed until chosen; without, it is on the page.
    versions = page.locator("section[data-tab-panel=versions]")
    expect(versions).to_be_hidden()
    page.click("button[data-tab=versions]")
    expect(versions.locator("form[action*='/versions/'] button")).to_be_visible()
    no_js = page.context.browser.new_context(java_script_enabled=False)
    try:
        plain = no_js.new_page()
        plain.goto(f"{base}/login/")
        plain.fill("#id_username", "polish")
        plain.fill("#id_password", PASSWORD)
        plain.click("main form.form button[type=submit]")
        plain.goto(f"{base}/pipelines/{version.pipeline_id}/")
        expect(
            plain.locator("section[data-tab-panel=versions] form[action*='/versions/'] button")
        ).to_be_visible()
    finally:
        no_js.close()

    # An unknown page: Canal's own 404, with the navigation.
    response = page.goto(f"{base}/no/such/page/")
    assert response is not None and response.status == 404
    expect(page.locator("main h1")).to_have_text("Not found")
    expect(page.locator("nav.mainnav")).to_be_visible()

    assert [line for line in console if "Content Security Policy" in line] == []
    assert page.canal_errors == []  # type: ignore[attr-defined]


# Every cell's content fits in its cell, the table fits its box, a time stays on one
# line, and no word is broken in the middle (a break after "-" or "/" is fine): what a
# reader at 800 px sees.
_FITS = """() => {
  const bad = [];
  const range = document.createRange();
  for (const table of document.querySelectorAll('main table.table')) {
    if (table.offsetParent === null) continue;
    const wrap = table.closest('.table-wrap') || table.parentElement;
    if (wrap.scrollWidth > wrap.clientWidth + 1) bad.push('table wider than its box');
    for (const cell of table.querySelectorAll('td, th')) {
      if (cell.offsetParent === null) continue;
      if (cell.scrollWidth > cell.clientWidth + 1) bad.push('overflows: ' + cell.textContent.trim());
      for (const time of cell.querySelectorAll('time')) {
        if (time.getClientRects().length > 1) bad.push('time on two lines: ' + time.textContent);
      }
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const re = /[^\\s\\-\\/_#]+/g;
        let m;
        while ((m = re.exec(node.data)) !== null) {
          range.setStart(node, m.index);
          range.setEnd(node, m.index + m[0].length);
          const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
          if (lines.size > 1) bad.push('word broken: ' + m[0]);
        }
      }
    }
  }
  return bad;
}"""


def test_tables_fit_at_800_px(live_server, browser_page, transactional_db) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import ArtifactFactory, ExperimentFactory, RecurringRunFactory, TaskFactory

    expect = _expect()
    page, base = browser_page, live_server.url
    UserFactory(username="narrow", namespace__role=Membership.Role.OWNER)
    words = "trains a gradient boosted model on the nightly extract and publishes its metrics"
    version = PipelineVersionFactory(
        pipeline=PipelineFactory(display_name="customer-churn-training-pipeline", description=words),
        display_name="customer-churn-training-pipeline-v2",
    )
    experiment = ExperimentFactory(
        display_name="churn experiments for the quarterly review", description=words
    )
    run = RunFactory(experiment=experiment, pipeline_version=version, display_name="nightly churn training")
    root = TaskFactory(run=run, key="root", name="root")
    for index in range(3):
        task = TaskFactory(
            run=run,
            parent=root,
            key=f"root/for-loop-2#{index}/preprocess-customer-records",
            name="preprocess-customer-records",
            cache_status="not cached: no earlier result",
        )
        ArtifactFactory(producer_task=task, name="processed_customer_records", schema_title="system.Dataset")
    RecurringRunFactory(
        experiment=experiment,
        pipeline_version=version,
        display_name="nightly churn retraining",
        timezone="Europe/Paris",
    )

    page.set_viewport_size({"width": 800, "height": 900})
    page.goto(f"{base}/login/")
    page.fill("#id_username", "narrow")
    page.fill("#id_password", PASSWORD)
    page.click("main form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/runs/$"))
    for url in ("/pipelines/", "/experiments/", "/artifacts/", "/recurring-runs/", f"/runs/{run.pk}/"):
        page.goto(f"{base}{url}")
        if "/runs/" in url:
            page.click("button[data-tab=tasks]")
        expect(page.locator("main table.table:visible").first).to_be_visible()
        assert page.evaluate(_FITS) == [], url
