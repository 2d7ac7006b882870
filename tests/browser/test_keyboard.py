"""The run page from the keyboard alone, in Chromium, against a live server and a real
worker: after the first navigation every step is a key press. Skip to content, Tab to
the DAG, arrow keys along the graph (producer → artifact → consumer), Enter opens the
node's panel and moves focus into it, arrow keys switch the panel's tabs to the log,
Escape closes it and puts focus back on the node; the run page's own tabs switch with
the arrow keys too.

No timed assertions: Playwright's expect() waits for each state to appear.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.test import Client

from apps.core.authz import OPERATOR
from apps.core.services import namespace_ensure
from apps.pipelines.services import pipeline_create_from_upload
from apps.runs.services import run_create
from tests.factories import UserFactory
from tests.live import wait_for_run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

PRODUCER = "root/make-greeting"
CONSUMER = "root/read-greeting"
ARTIFACT = "root/make-greeting::greeting"
DATASET = {"artifactType": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}}


def _tiny_pipeline() -> bytes:
    """Two shell steps (no task environment to build): one writes a Dataset, the next
    reads it and prints it."""
    spec = {
        "pipelineInfo": {"name": "keyboard"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.6",
        "components": {
            "comp-make": {
                "executorLabel": "exec-make",
                "outputDefinitions": {"artifacts": {"greeting": DATASET}},
            },
            "comp-read": {
                "executorLabel": "exec-read",
                "inputDefinitions": {"artifacts": {"text": DATASET}},
            },
        },
        "deploymentSpec": {
            "executors": {
                "exec-make": {
                    "container": {
                        "image": "alpine:3",
                        "command": [
                            "sh",
                            "-c",
                            'mkdir -p "$(dirname "$0")" && printf "keys all the way" > "$0"',
                            "{{$.outputs.artifacts['greeting'].path}}",
                        ],
                    }
                },
                "exec-read": {
                    "container": {
                        "image": "alpine:3",
                        "command": [
                            "sh",
                            "-c",
                            'echo "consumer read: $(cat "$0")"',
                            "{{$.inputs.artifacts['text'].path}}",
                        ],
                    }
                },
            }
        },
        "root": {
            "dag": {
                "tasks": {
                    "make-greeting": {
                        "componentRef": {"name": "comp-make"},
                        "taskInfo": {"name": "make-greeting"},
                    },
                    "read-greeting": {
                        "componentRef": {"name": "comp-read"},
                        "taskInfo": {"name": "read-greeting"},
                        "dependentTasks": ["make-greeting"],
                        "inputs": {
                            "artifacts": {
                                "text": {
                                    "taskOutputArtifact": {
                                        "producerTask": "make-greeting",
                                        "outputArtifactKey": "greeting",
                                    }
                                }
                            }
                        },
                    },
                }
            }
        },
    }
    return yaml.safe_dump(spec, sort_keys=False).encode()


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _focused(page: Any, selector: str) -> bool:
    return bool(
        page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector)
    )


def test_open_a_nodes_log_with_the_keyboard_only(live_stack, browser_page, screenshot_dir) -> None:  # type: ignore[no-untyped-def]
    expect = _expect()
    page, base = browser_page, live_stack.url
    user = UserFactory(username="keyboarder", is_staff=True, is_superuser=True)
    namespace = namespace_ensure(actor=OPERATOR)
    version = pipeline_create_from_upload(
        actor=OPERATOR, namespace=namespace, data=_tiny_pipeline(), filename="keyboard.yaml", name="keyboard"
    )
    run = run_create(
        actor=OPERATOR, namespace=namespace, display_name="by keyboard", pipeline_version=version
    )
    assert wait_for_run(run.pk, timeout=300).state == "SUCCEEDED"

    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": base,
            }
        ]
    )
    page.goto(f"{base}/runs/{run.pk}/")  # the only navigation; from here on, keys only
    keys = page.keyboard

    # The first Tab reaches the skip link; Enter moves focus to the page's content.
    keys.press("Tab")
    skip = page.locator("a.skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_have_text("Skip to content")
    expect(skip).to_be_in_viewport()
    page.screenshot(path=str(screenshot_dir / "kb-01-skip-link.png"))
    keys.press("Enter")
    expect(page.locator("main#content")).to_be_focused()

    # Tab on until a node of the DAG has focus (the toolbar, tabs and zoom come first).
    for _ in range(40):
        keys.press("Tab")
        if _focused(page, "#dag-canvas a, #dag-canvas a *"):
            break
    node_link = "#dag-canvas g[data-node='{}'] a"
    expect(page.locator(node_link.format(PRODUCER))).to_be_focused()

    # Down the graph: the producer, the artifact it wrote, the step that read it.
    keys.press("ArrowDown")
    expect(page.locator(node_link.format(ARTIFACT))).to_be_focused()
    keys.press("ArrowDown")
    expect(page.locator(node_link.format(CONSUMER))).to_be_focused()
    keys.press("ArrowUp")
    expect(page.locator(node_link.format(ARTIFACT))).to_be_focused()
    page.screenshot(path=str(screenshot_dir / "kb-02-artifact-focused.png"))
    keys.press("ArrowDown")
    expect(page.locator(node_link.format(CONSUMER))).to_be_focused()

    # Enter opens the node's panel (no navigation) and focus moves to its selected tab.
    keys.press("Enter")
    panel = page.locator("#node-panel-body .panel")
    expect(panel).to_have_attribute("data-node-id", CONSUMER)
    expect(page).to_have_url(f"{base}/runs/{run.pk}/?node={CONSUMER.replace('/', '%2F')}#graph")
    tablist = page.locator("#node-panel [role=tablist]")
    expect(tablist).to_be_visible()
    first = tablist.locator("[role=tab]").first
    expect(first).to_be_focused()
    expect(first).to_have_attribute("aria-selected", "true")
    # Arrow keys select the next tab; End the last one: the log.
    keys.press("ArrowRight")
    details = page.locator("#node-panel [role=tab][data-ptab=details]")
    expect(details).to_be_focused()
    expect(details).to_have_attribute("aria-selected", "true")
    expect(first).to_have_attribute("aria-selected", "false")
    keys.press("End")
    logs = page.locator("#node-panel [role=tab][data-ptab=logs]")
    expect(logs).to_be_focused()
    expect(logs).to_have_attribute("aria-selected", "true")
    log_panel = page.locator("#" + str(logs.get_attribute("aria-controls")))
    expect(log_panel).to_have_attribute("role", "tabpanel")
    expect(log_panel).to_be_visible()
    expect(page.locator("#node-panel pre.log-view")).to_contain_text("consumer read: keys all the way")
    page.screenshot(path=str(screenshot_dir / "kb-03-log-tab.png"))

    # Escape closes the panel and gives focus back to the node.
    keys.press("Escape")
    expect(page.locator("#node-panel")).to_be_hidden()
    expect(page.locator(node_link.format(CONSUMER))).to_be_focused()
    # Space opens a panel too: the artifact node's is its producer's, which lists it.
    keys.press("ArrowUp")
    keys.press(" ")
    expect(panel).to_have_attribute("data-node-id", ARTIFACT)
    expect(panel.locator("[data-outputs]")).to_contain_text("greeting")
    expect(panel.locator("[data-outputs]")).to_contain_text("system.Dataset")

    # The run page's tabs: Shift+Tab back to them, arrows switch (and show) the panels.
    keys.press("Escape")
    for _ in range(40):
        keys.press("Shift+Tab")
        if _focused(page, "[data-tabs] [role=tab]"):
            break
    graph_tab = page.locator("[data-tabs] [role=tab][data-tab=graph]")
    expect(graph_tab).to_be_focused()
    expect(page.locator("[data-tabs]")).to_have_attribute("role", "tablist")
    keys.press("ArrowRight")
    details_tab = page.locator("[data-tabs] [role=tab][data-tab=details]")
    expect(details_tab).to_be_focused()
    expect(details_tab).to_have_attribute("aria-selected", "true")
    expect(page.locator("#" + str(details_tab.get_attribute("aria-controls")))).to_be_visible()
    expect(page.locator("section[data-tab-panel=graph]")).to_be_hidden()
    assert page.canal_errors == []  # type: ignore[attr-defined]


def test_the_pipeline_pages_dag_is_keyboard_reachable_too(live_server, browser_page) -> None:  # type: ignore[no-untyped-def]
    expect = _expect()
    page, base = browser_page, live_server.url
    user = UserFactory(username="keyreader")
    version = pipeline_create_from_upload(
        actor=OPERATOR,
        namespace=namespace_ensure(actor=OPERATOR),
        data=_tiny_pipeline(),
        filename="keyboard.yaml",
        name="keyboard",
    )
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": base,
            }
        ]
    )
    page.goto(f"{base}/pipelines/{version.pipeline_id}/")
    keys = page.keyboard
    for _ in range(40):
        keys.press("Tab")
        if _focused(page, "#dag-canvas g[tabindex]"):
            break
    # Nodes drawn without links (no run to link to) are buttons, in the graph's order.
    first = page.locator("#dag-canvas g[role=button]").first
    expect(first).to_be_focused()
    expect(first).to_have_attribute("aria-label", "make-greeting")
    keys.press("ArrowDown")
    expect(page.locator("#dag-canvas g[role=button][aria-label=greeting]")).to_be_focused()
    keys.press("ArrowDown")
    reader = page.locator("#dag-canvas g[role=button][aria-label=read-greeting]")
    expect(reader).to_be_focused()
    keys.press("Enter")
    expect(page.locator("#node-panel")).to_be_visible()
    expect(page.locator("#node-panel-title")).to_have_text("read-greeting")
    expect(page.locator("#node-panel")).to_be_focused()
    keys.press("Escape")
    expect(page.locator("#node-panel")).to_be_hidden()
    expect(reader).to_be_focused()
    assert page.canal_errors == []  # type: ignore[attr-defined]


def test_a_focused_node_keeps_focus_while_the_live_dag_is_redrawn(  # type: ignore[no-untyped-def]
    live_stack, browser_page, tmp_path, step_shared
) -> None:
    from tests.browser.test_ui_flows import gated_pipeline_file

    expect = _expect()
    page, base = browser_page, live_stack.url
    user = UserFactory(username="keywatcher", is_staff=True, is_superuser=True)
    namespace = namespace_ensure(actor=OPERATOR)
    version = pipeline_create_from_upload(
        actor=OPERATOR,
        namespace=namespace,
        data=gated_pipeline_file(tmp_path).read_bytes(),
        filename="gated.yaml",
        name="gated",
    )
    gate = step_shared / "gate"
    run = run_create(
        actor=OPERATOR,
        namespace=namespace,
        display_name="watched",
        pipeline_version=version,
        parameters={"gate": str(gate)},
    )
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": base,
            }
        ]
    )
    page.goto(f"{base}/runs/{run.pk}/")
    node = page.locator("#dag-canvas g[data-node='root/wait-for-gate']")
    expect(node).to_have_attribute("data-state", "RUNNING", timeout=300_000)
    for _ in range(40):
        page.keyboard.press("Tab")
        if _focused(page, "#dag-canvas a"):
            break
    link = node.locator("a")
    expect(link).to_be_focused()
    page.evaluate("window.__canalNoReload = 'still here'")
    gate.write_text("open")
    # The step finishes; the page redraws the DAG (a new SVG) and focus stays on the node.
    expect(node).to_have_attribute("data-state", "SUCCEEDED", timeout=300_000)
    expect(page.locator("#run-page")).to_have_attribute("data-finished", "1", timeout=300_000)
    expect(link).to_be_focused()
    expect(link).to_have_attribute("aria-label", re.compile("wait-for-gate — succeeded"))
    assert page.evaluate("window.__canalNoReload") == "still here"
    assert page.canal_errors == []  # type: ignore[attr-defined]
