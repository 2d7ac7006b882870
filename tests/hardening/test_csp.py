"""Content-Security-Policy: every response of the dashboard carries the site policy
(only self, no inline script or style, never framed); the artifact responses keep
their own sandbox policies; and the pages Canal renders contain nothing that policy
would block (inline scripts, event-handler attributes, style attributes).

The browser half (tests/hardening/test_csp_browser.py) checks that Chromium reports no
violation and that the pages' script still works under the policy."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from apps.artifacts.views import FRAME_CSP, SANDBOX_CSP
from apps.core.choices import RuntimeState
from tests.factories import (
    ArtifactFactory,
    ExperimentFactory,
    PipelineVersionFactory,
    RecurringRunFactory,
    RunFactory,
    TaskFactory,
    UserFactory,
    run_artifact_dir,
)

SITE_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "frame-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def policy(header: str) -> dict[str, list[str]]:
    """A CSP header as {directive: [sources]}."""
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


@pytest.fixture
def world(db, tmp_path: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """One of everything a route can name, in the default namespace."""
    version = PipelineVersionFactory()
    run = RunFactory(pipeline_version=version, state=RuntimeState.SUCCEEDED)
    task = TaskFactory(run=run, name="echo", key="root/echo")
    # In the run's own artifact directory: storage its namespace owns, so it is served.
    root = run_artifact_dir(run) / "csp-tests"
    root.mkdir(parents=True, exist_ok=True)
    page = root / "page.html"
    page.write_text("<p id='x'>hi</p><script>document.getElementById('x').textContent = 'ran'</script>")
    html = ArtifactFactory(producer_task=task, name="page", schema_title="system.HTML", uri=str(page))
    metrics = ArtifactFactory(
        producer_task=task,
        name="metrics",
        schema_title="system.ClassificationMetrics",
        uri=str(root / "metrics"),
        metadata={
            "confusionMatrix": {
                "annotationSpecs": [{"displayName": "cat"}, {"displayName": "dog"}],
                "rows": [{"row": [9, 1]}, {"row": [2, 7]}],
            },
            "confidenceMetrics": [
                {"confidenceThreshold": 1.0, "falsePositiveRate": 0.0, "recall": 0.0},
                {"confidenceThreshold": 0.5, "falsePositiveRate": 0.2, "recall": 0.8},
                {"confidenceThreshold": 0.0, "falsePositiveRate": 1.0, "recall": 1.0},
            ],
        },
    )
    return {
        "run_id": run.pk,
        "task_id": task.pk,
        "experiment_id": ExperimentFactory().pk,
        "pipeline_id": version.pipeline.pk,
        "pipeline_version_id": version.pk,
        "recurring_run_id": RecurringRunFactory(pipeline_version=version).pk,
        "artifact_id": html.pk,
        "index": 0,
        "metrics": metrics,
        "html": html,
    }


def _get_routes(world: dict[str, Any]) -> list[str]:
    """Every route of the URL conf, its parameters filled from ``world`` by name
    (a random id where the world has nothing of that name)."""
    paths: list[str] = []

    def fill(match: re.Match[str]) -> str:
        return str(world.get(match.group(1), uuid.uuid4()))

    def walk(patterns: Any, prefix: str) -> None:
        for p in patterns:
            route = re.sub(r"<(?:\w+:)?(\w+)>", fill, str(p.pattern))
            route = route.lstrip("^").rstrip("$").replace("\\Z", "")
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + route)
            elif isinstance(p, URLPattern) and "(?P" not in route and "\\" not in route:
                paths.append("/" + prefix + route)

    walk(get_resolver().url_patterns, "")
    return sorted(set(paths))


@pytest.mark.django_db
def test_every_route_sends_a_csp(world) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    routes = _get_routes(world)
    assert len(routes) > 40
    pages = 0
    for path in routes:
        response = client.get(path)
        header = response.get("Content-Security-Policy")
        assert header, f"{path} ({response.status_code}) has no Content-Security-Policy"
        if "/frame/" in path:
            assert response.status_code == 200, path
            assert header == FRAME_CSP, path
        elif path.endswith(("/download/", "/view/")) and path.startswith("/artifacts/"):
            assert header == SANDBOX_CSP, path
        else:
            assert policy(header) == SITE_POLICY or path == "/apis/v2beta1/docs/", (path, header)
        if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
            pages += 1
    assert pages > 15
    print(f"{len(routes)} routes checked, {pages} of them HTML pages")


@pytest.mark.django_db
def test_pages_outside_the_login_carry_it_too(client) -> None:  # type: ignore[no-untyped-def]
    for path in ("/login/", "/admin/login/", "/healthz", "/pipelines/"):
        response = client.get(path)
        assert policy(response["Content-Security-Policy"]) == SITE_POLICY, path
    # A refused POST (no CSRF token) is a dashboard page like any other.
    refused = Client(enforce_csrf_checks=True).post("/login/", {"username": "x", "password": "y"})
    assert refused.status_code == 403
    assert policy(refused["Content-Security-Policy"]) == SITE_POLICY


@pytest.mark.django_db
def test_swagger_ui_gets_the_site_policy_plus_data_images(logged_in) -> None:  # type: ignore[no-untyped-def]
    page = logged_in.get("/apis/v2beta1/docs/")
    assert page.status_code == 200
    expected = dict(SITE_POLICY, **{"img-src": ["'self'", "data:"]})
    assert policy(page["Content-Security-Policy"]) == expected
    html = page.content.decode()
    assert "<style" not in html
    # The init script is served by URL, not inlined.
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and all("src=" in attrs for attrs in scripts), scripts
    script_url = re.search(r'<script src="([^"]*script=[^"]*)"', html)
    assert script_url, html
    script = logged_in.get(script_url.group(1).replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


class _Inline(HTMLParser):
    """What a strict CSP would block in a rendered page."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and not values.get("src") and values.get("type") != "application/json":
            self.problems.append(f"inline <script> {values}")
        if tag == "style":
            self.problems.append("<style> element")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>: {value}")
            if name.startswith("on"):
                self.problems.append(f"handler {name} on <{tag}>")
            if name in ("href", "src", "action") and (value or "").lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL on <{tag}>")


@pytest.mark.django_db
def test_dashboard_pages_have_no_inline_script_or_style(world) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(UserFactory(username="alice"))
    run, task = world["run_id"], world["task_id"]
    pages = [
        "/runs/",
        f"/runs/{run}/",
        f"/runs/{run}/?task={task}",  # with the task panel and its visualizations
        f"/runs/{run}/panel/?task={task}",  # fragments the page's script loads
        f"/runs/{run}/tasks/",
        "/runs/new/",
        f"/runs/new/?version={world['pipeline_version_id']}",
        "/pipelines/",
        f"/pipelines/{world['pipeline_id']}/",
        "/pipelines/upload/",
        "/experiments/",
        "/experiments/new/",
        f"/experiments/{world['experiment_id']}/",
        "/recurring-runs/",
        f"/recurring-runs/{world['recurring_run_id']}/",
        "/artifacts/",
        f"/artifacts/{world['html'].pk}/",
        f"/artifacts/{world['metrics'].pk}/",
    ]
    for path in pages:
        fragment = "/panel/" in path or path.endswith("/tasks/")
        response = client.get(path, **({"HTTP_X_CANAL_FRAGMENT": "1"} if fragment else {}))
        assert response.status_code == 200, path
        parser = _Inline()
        parser.feed(response.content.decode())
        assert parser.problems == [], (path, parser.problems)
    # The pages that draw metrics did draw them (so the audit saw the heat grid and the ROC).
    metrics_page = client.get(f"/artifacts/{world['metrics'].pk}/").content.decode()
    assert 'class="cm-cell cm-s10 cm-diag"' in metrics_page  # the darkest cell, 9 of 9
    assert 'class="roc-curve"' in metrics_page
    assert '<svg class="swatch"' in metrics_page  # the legend's colour key, an SVG fill
