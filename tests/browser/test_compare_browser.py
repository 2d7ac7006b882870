"""Run compare in Chromium, with three runs whose metrics, ROC curves, Markdown and HTML
reports differ: reached from the runs list (no CSRF token in the address), metric values
drawn under their own run's header, the runs sorted by a metric through a real link,
Markdown side by side, HTML in sandboxed frames, and no CSP violation. Screenshots of
the page (and of the admin's run page) are left in the screenshot directory.

No timed assertions: Playwright's expect() waits for each state to appear.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from apps.core.choices import RuntimeState
from apps.core.models import Membership
from tests.browser.conftest import NARROW, WIDE
from tests.factories import (
    ArtifactFactory,
    PipelineVersionFactory,
    RunFactory,
    TaskFactory,
    UserFactory,
    artifact_file,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-canal-test"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _shots(page: Any, directory: Path, name: str) -> None:
    for label, size in (("1280", WIDE), ("800", NARROW)):
        page.set_viewport_size(size)
        page.screenshot(path=str(directory / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(WIDE)


def _run(version: Any, name: str, metrics: dict[str, float], tpr: float, report: str) -> Any:
    run = RunFactory(
        pipeline_version=version,
        display_name=name,
        state=RuntimeState.SUCCEEDED,
        runtime_parameters={"learning_rate": metrics["accuracy"] / 10, "epochs": 5},
    )
    train = TaskFactory(run=run, key="root/train", name="train", outputs={"parameters": {"score": name}})
    report_task = TaskFactory(run=run, key="root/report", name="report")
    for i in (10, 2, 1):
        TaskFactory(run=run, key=f"root/for-loop-1#{i}/shard", name="shard")
    ArtifactFactory(producer_task=train, name="metrics", schema_title="system.Metrics", metadata=metrics)
    ArtifactFactory(
        producer_task=train,
        name="classification",
        schema_title="system.ClassificationMetrics",
        metadata={
            "confidenceMetrics": [
                {"confidenceThreshold": 1.0, "falsePositiveRate": 0.0, "recall": 0.0},
                {"confidenceThreshold": 0.5, "falsePositiveRate": 0.2, "recall": tpr},
                {"confidenceThreshold": 0.0, "falsePositiveRate": 1.0, "recall": 1.0},
            ]
        },
    )
    ArtifactFactory(
        producer_task=report_task,
        name="summary",
        schema_title="system.Markdown",
        uri=artifact_file(report_task, "summary.md", report),
    )
    ArtifactFactory(
        producer_task=report_task,
        name="page",
        schema_title="system.HTML",
        uri=artifact_file(
            report_task,
            "page.html",
            f"<html><body><h2 id='who'>html of {name}</h2><script>document.getElementById('who')"
            f".textContent += ' (script ran)';</script></body></html>",
        ),
    )
    return run


# For each column of #compare-metrics: how far the right edge of each value's text is
# from the right edge of its header's text (the two are aligned when this is ~0).
ALIGNMENT_JS = """
() => {
  const table = document.querySelector('#compare-metrics');
  const right = (cell) => { const r = document.createRange(); r.selectNodeContents(cell);
                            return r.getBoundingClientRect().right; };
  const heads = [...table.querySelectorAll('thead th')].slice(1);
  const out = [];
  for (const row of table.querySelectorAll('tbody tr')) {
    [...row.querySelectorAll('td')].forEach((td, i) => out.push(Math.abs(right(td) - right(heads[i]))));
  }
  return out;
}
"""


def test_compare_three_runs_in_chromium(live_server, browser_page, screenshot_dir) -> None:  # type: ignore[no-untyped-def]
    expect = _expect()
    page, base = browser_page, live_server.url
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    UserFactory(username="comparer", namespace__role=Membership.Role.OWNER)
    version = PipelineVersionFactory()
    _run(version, "alpha", {"accuracy": 0.81, "loss": 0.42, "f1": 0.7}, 0.6, "# alpha\n\n- **good** start")
    _run(version, "beta", {"accuracy": 0.93, "loss": 0.21}, 0.9, "# beta\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    _run(version, "gamma", {"accuracy": 0.77, "loss": 0.55, "f1": 0.6}, 0.4, "# gamma\n\n*slow*")

    page.goto(f"{base}/login/")
    page.fill("#id_username", "comparer")
    page.fill("#id_password", PASSWORD)
    page.click("main form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/runs/$"))

    # From the runs list (newest first): the selection goes by POST, the address is clean.
    for name in ("alpha", "beta", "gamma"):
        page.locator("tr", has_text=name).locator("input[name=run]").check()
    page.click("text=Compare selected")
    expect(page.locator(".page-head h1")).to_have_text("Compare 3 runs")
    assert "csrfmiddlewaretoken" not in page.url
    headers = page.locator("#compare-metrics thead th")
    expect(headers).to_have_text(["Metric", "gamma", "beta", "alpha"])
    accuracy = page.locator("#compare-metrics tr", has=page.locator("th", has_text="accuracy"))
    expect(accuracy.locator("td")).to_have_text(["0.77", "0.93", "0.81"])
    f1 = page.locator("#compare-metrics tr", has=page.locator("th", has_text="f1"))
    expect(f1.locator("td")).to_have_text(["0.6", "—", "0.7"])
    offsets = page.evaluate(ALIGNMENT_JS)
    assert len(offsets) == 9 and max(offsets) < 2, offsets

    # The ROC legend follows the columns.
    expect(page.locator(".roc-legend li")).to_have_text(
        [re.compile(r"^gamma"), re.compile(r"^beta"), re.compile(r"^alpha")]
    )
    # Loop iterations in numeric order.
    keys = page.locator("#compare-steps tbody th").all_inner_texts()
    loop = [k for k in keys if "for-loop-1#" in k]
    assert loop == ["root/for-loop-1#1/shard", "root/for-loop-1#2/shard", "root/for-loop-1#10/shard"]

    # Markdown side by side, rendered; HTML in sandboxed frames that run their own script.
    expect(page.locator("#compare-markdown .doc-column h1")).to_have_text(["gamma", "beta", "alpha"])
    expect(page.locator("#compare-markdown .doc-column table")).to_have_count(1)
    frames = page.locator("#compare-html iframe")
    expect(frames).to_have_count(3)
    for i, name in enumerate(("gamma", "beta", "alpha")):
        expect(frames.nth(i)).to_have_attribute("sandbox", "allow-scripts")
        expect(page.frame_locator("#compare-html iframe").nth(i).locator("#who")).to_have_text(
            f"html of {name} (script ran)"
        )
    _shots(page, screenshot_dir, "compare-3-runs")
    page.locator("#compare-html").scroll_into_view_if_needed()
    page.locator("#compare-html").screenshot(path=str(screenshot_dir / "compare-html.png"))

    # Sorted by a metric through the header link (a real link: it works without script).
    page.locator("#compare-ranking thead a", has_text="accuracy").click()
    expect(page.locator("#compare-ranking tbody th")).to_have_text(["beta", "alpha", "gamma"])
    page.locator("#compare-ranking thead a", has_text="accuracy").click()
    expect(page.locator("#compare-ranking tbody th")).to_have_text(["gamma", "alpha", "beta"])
    page.locator("#compare-ranking thead a", has_text="f1").click()
    expect(page.locator("#compare-ranking tbody th")).to_have_text(["alpha", "gamma", "beta"])
    page.locator("#metrics-by-run").scroll_into_view_if_needed()
    page.locator("#metrics-by-run").screenshot(path=str(screenshot_dir / "compare-sorted-f1.png"))

    assert [line for line in console if re.search(r"Content[ -]Security[ -]Policy", line)] == []
    assert page.canal_errors == []  # type: ignore[attr-defined]


def test_admin_run_page_in_chromium(live_server, browser_page, screenshot_dir) -> None:  # type: ignore[no-untyped-def]
    """The admin's run list (its actions; experiments named with their namespace) and a
    run's page (the spec pretty-printed, escaped), under the CSP; screenshots of both."""
    from apps.experiments.selectors import DEFAULT_EXPERIMENT_NAME
    from tests.factories import ExperimentFactory, NamespaceFactory

    expect = _expect()
    page, base = browser_page, live_server.url
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    UserFactory(username="operator2", is_staff=True, is_superuser=True)
    run = RunFactory(display_name="admin-run", runtime_parameters={"note": "<b>not bold</b>"})
    for name in ("team-a", "team-b"):
        ns = NamespaceFactory(name=name)
        RunFactory(
            namespace=ns,
            experiment=ExperimentFactory(namespace=ns, display_name=DEFAULT_EXPERIMENT_NAME),
            display_name=f"{name}-run",
        )
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "operator2")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{base}/admin/runs/run/")
    expect(page.locator("select[name=action] option")).to_contain_text(
        ["Terminate selected runs", "Archive selected runs", "Restore selected runs"]
    )
    expect(page.locator("#changelist-filter")).to_contain_text("team-a / Default")
    expect(page.locator("#changelist-filter")).to_contain_text("team-b / Default")
    page.screenshot(path=str(screenshot_dir / "admin-runs.png"), full_page=True)
    page.goto(f"{base}/admin/runs/run/{run.pk}/change/")
    note = page.locator("pre.admin-json").first
    expect(note).to_contain_text('"note": "<b>not bold</b>"')
    expect(note.locator("b")).to_have_count(0)  # text, not markup
    page.screenshot(path=str(screenshot_dir / "admin-run.png"), full_page=True)
    assert [line for line in console if re.search(r"Content[ -]Security[ -]Policy", line)] == []


def test_compare_works_without_javascript(live_server, browser_page, screenshot_dir) -> None:  # type: ignore[no-untyped-def]
    """Select on the runs list, compare, sort by a metric: real forms and links only."""
    expect = _expect()
    base = live_server.url
    UserFactory(username="nojs", namespace__role=Membership.Role.OWNER)
    version = PipelineVersionFactory()
    for name, accuracy in (("one", 0.2), ("two", 0.9), ("three", 0.5)):
        run = RunFactory(pipeline_version=version, display_name=name, state=RuntimeState.SUCCEEDED)
        task = TaskFactory(run=run, key="root/train", name="train")
        ArtifactFactory(
            producer_task=task, name="metrics", schema_title="system.Metrics", metadata={"accuracy": accuracy}
        )
    context = browser_page.context.browser.new_context(java_script_enabled=False, viewport=WIDE)
    try:
        page = context.new_page()
        page.goto(f"{base}/login/")
        page.fill("#id_username", "nojs")
        page.fill("#id_password", PASSWORD)
        page.click("main form.form button[type=submit]")
        expect(page).to_have_url(re.compile(r"/runs/$"))
        # One run only: the compare page says what is wrong and nothing breaks.
        page.locator("tr", has_text="one").locator("input[name=run]").check()
        page.click("text=Compare selected")
        expect(page.locator(".msg")).to_contain_text("Select between 2 and 10 runs to compare.")
        for name in ("one", "two", "three"):
            page.locator("tr", has_text=name).locator("input[name=run]").check()
        page.click("text=Compare selected")
        expect(page.locator(".page-head h1")).to_have_text("Compare 3 runs")
        assert "csrfmiddlewaretoken" not in page.url
        page.locator("#compare-ranking thead a", has_text="accuracy").click()
        expect(page.locator("#compare-ranking tbody th")).to_have_text(["two", "three", "one"])
        page.screenshot(path=str(screenshot_dir / "compare-nojs.png"), full_page=True)
    finally:
        context.close()
