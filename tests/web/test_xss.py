"""Hostile strings in every user-supplied place (names, descriptions, parameters,
errors, task labels in the DAG SVG, log lines, Markdown artifacts, metric names)
come out escaped or sanitised on every page that shows them: no tag, attribute or
URL from a payload survives as markup."""

from __future__ import annotations

import hashlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from apps.core.choices import RuntimeState
from apps.runs.models import TaskAttempt
from tests.factories import (
    ArtifactFactory,
    ExperimentFactory,
    PipelineFactory,
    PipelineVersionFactory,
    RunFactory,
    TaskFactory,
    artifact_file,
)

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><script>alert(2)</script>',
    "'><img src=x onerror=alert(3)>",
    "<img src=x onerror=alert(4)>",
    "<svg onload=alert(5)>",
    "<svg><script>alert(6)</script></svg>",
    "javascript:alert(7)",
    '" onmouseover="alert(8)',
    "' onfocus='alert(9)' autofocus='",
    "</textarea><script>alert(10)</script>",
    "</title><script>alert(11)</script>",
    "</script><script>alert(12)</script>",
    "<iframe src=javascript:alert(13)>",
    "<a href=javascript:alert(14)>x</a>",
    "<style>*{display:none}</style>",
    "<body onload=alert(16)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(17)>",
    "]]><script>alert(18)</script>",
    "<!--<script>alert(19)//-->",
    "\u202e<script>alert(20)</script>",
    "<details open ontoggle=alert(21)>",
    "<object data=javascript:alert(22)>",
    "<base href=//evil.example/>",
    "<meta http-equiv=refresh content=0;url=//evil.example>",
    "{{ request.user.password }}{% debug %}",
]

# Tags Canal's own pages use; a payload that became markup would add others (img,
# iframe without our class, object, base, meta, style, math, details...).
OWN_TAGS = {
    "a", "aside", "br", "button", "code", "dd", "details", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "form", "h1", "h2", "h3", "h4", "header", "input", "label", "legend", "li", "main", "nav",
    "noscript", "ol", "option", "p", "pre", "section", "select", "small", "span", "strong", "summary",
    "table", "tbody", "td", "textarea", "th", "thead", "time", "tr", "ul", "html", "head", "meta",
    "title", "link", "body", "script", "img", "svg", "g", "polygon", "path", "text", "ellipse", "polyline",
    "circle", "line", "rect", "defs", "datalist", "em", "h5", "h6", "hr", "blockquote", "del", "s",
    "sub", "sup", "abbr", "b", "i", "tfoot", "iframe",
}  # fmt: skip


class _Audit(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.in_head = False
        self.svg_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "head":
            self.in_head = True
        if tag == "svg":
            self.svg_depth += 1
        if tag not in OWN_TAGS:
            self.problems.append(f"unexpected <{tag}>")
        if tag == "script" and not (
            values.get("type") == "application/json" or (values.get("src") or "").startswith("/static/")
        ):
            self.problems.append(f"inline script {values}")
        if tag == "img" and values.get("src") not in ("/static/img/favicon.svg",):
            self.problems.append(f"img {values}")
        if tag == "iframe" and values.get("sandbox") != "allow-scripts":
            self.problems.append(f"iframe {values}")
        in_body_only = tag in ("meta", "link") and not self.in_head
        stray_title = tag == "title" and not (self.in_head or self.svg_depth)
        if in_body_only or stray_title:
            self.problems.append(f"<{tag}> in body")
        if tag == "details" and "ontoggle" in values:
            self.problems.append("ontoggle")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name}={value!r} on <{tag}>")
            url_attribute = name in ("href", "src", "action", "formaction", "xlink:href", "data")
            if url_attribute and (value or "").strip().lower().startswith(
                ("javascript:", "data:", "vbscript:")
            ):
                self.problems.append(f"{name}={value!r} on <{tag}>")
            if name == "autofocus":
                self.problems.append("autofocus")

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.in_head = False
        if tag == "svg":
            self.svg_depth -= 1


def audit(html: str) -> list[str]:
    parser = _Audit()
    parser.feed(html)
    return parser.problems


def _spec_with_labels() -> dict:  # type: ignore[type-arg]
    tasks = {
        f"t{i}": {"componentRef": {"name": "comp-echo"}, "taskInfo": {"name": payload}}
        for i, payload in enumerate(PAYLOADS[:8])
    }
    return {
        "components": {"comp-echo": {"executorLabel": "exec-echo"}},
        "deploymentSpec": {
            "executors": {"exec-echo": {"container": {"image": "python:3.11", "command": ["echo"]}}}
        },
        "pipelineInfo": {"name": "hostile"},
        "root": {
            "dag": {"tasks": tasks},
            "inputDefinitions": {
                "parameters": {
                    f"p{i}": {"parameterType": "STRING", "defaultValue": payload, "description": payload}
                    for i, payload in enumerate(PAYLOADS)
                }
            },
        },
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.6",
    }


@pytest.fixture
def hostile_world(db):  # type: ignore[no-untyped-def]
    spec = _spec_with_labels()
    text = yaml.safe_dump(spec)
    version = None
    for i, payload in enumerate(PAYLOADS):
        pipeline = PipelineFactory(display_name=payload, name=f"p-{i}", description=payload)
        version = PipelineVersionFactory(
            pipeline=pipeline,
            display_name=payload,
            description=payload,
            source=text,
            pipeline_spec=spec,
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
        )
    assert version is not None
    experiment = ExperimentFactory(display_name=PAYLOADS[0], description=PAYLOADS[1])
    runs = []
    for i, payload in enumerate(PAYLOADS):
        runs.append(
            RunFactory(
                experiment=experiment if i % 2 else ExperimentFactory(display_name=f"{payload} {i}"),
                pipeline_version=version,
                pipeline_spec=spec,
                display_name=payload,
                description=payload,
                runtime_parameters={f"p{i}": payload},
                state=RuntimeState.FAILED,
                error=payload,
            )
        )
    run = runs[0]
    log = Path(settings.CANAL_LOG_DIR) / "xss" / "attempt-1.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("\n".join(PAYLOADS))
    task = TaskFactory(
        run=run,
        key="root/t0",
        name="t0",
        display_name=PAYLOADS[2],
        state=RuntimeState.FAILED,
        error=PAYLOADS[3],
        status_message=PAYLOADS[4],
        inputs={"parameters": {payload: payload for payload in PAYLOADS}},
        outputs={"parameters": {"out": PAYLOADS[5]}},
        image=PAYLOADS[6],
        command=PAYLOADS[:5],
        attempt=1,
        log_path=str(log),
    )
    TaskAttempt.objects.create(
        task=task, number=1, state=RuntimeState.FAILED, error=PAYLOADS[7], log_path=str(log)
    )
    ArtifactFactory(
        producer_task=task,
        name=PAYLOADS[8],
        schema_title="system.Markdown",
        uri=artifact_file(task, "report.md", "\n\n".join(PAYLOADS)),
    )
    ArtifactFactory(
        producer_task=task,
        name="metrics",
        schema_title="system.Metrics",
        metadata={payload: i for i, payload in enumerate(PAYLOADS)},
    )
    return {"run": run, "runs": runs, "task": task, "experiment": experiment, "version": version}


def _pages(world) -> list[tuple[str, dict]]:  # type: ignore[no-untyped-def,type-arg]
    run, task, version = world["run"], world["task"], world["version"]
    artifact = task.produced_artifacts.order_by("pk").first()
    return [
        ("/pipelines/?page_size=100", {}),
        (f"/pipelines/{version.pipeline_id}/", {}),
        ("/experiments/?page_size=100", {}),
        (f"/experiments/{world['experiment'].pk}/", {}),
        ("/runs/?page_size=100", {}),
        (f"/runs/{run.pk}/", {}),
        (f"/runs/{run.pk}/?task={task.pk}", {}),
        (f"/runs/{run.pk}/panel/?task={task.pk}", {"HTTP_X_CANAL_FRAGMENT": "1"}),
        (f"/runs/{run.pk}/panel/?node=root/t1", {"HTTP_X_CANAL_FRAGMENT": "1"}),
        (f"/runs/{run.pk}/tasks/", {}),
        (f"/runs/new/?version={version.pk}", {}),
        (f"/runs/new/?clone={run.pk}", {}),
        (f"/runs/compare/?run={run.pk}&run={world['runs'][1].pk}", {}),
        ("/artifacts/?page_size=100", {}),
        (f"/artifacts/{artifact.pk}/", {}),
        ("/executions/?page_size=100", {}),
        (f"/executions/{task.pk}/", {}),
    ]


def test_at_least_twenty_payloads() -> None:
    assert len(PAYLOADS) >= 20


@pytest.mark.django_db
def test_every_page_escapes_every_payload(logged_in, hostile_world) -> None:  # type: ignore[no-untyped-def]
    for url, headers in _pages(hostile_world):
        response = logged_in.get(url, **headers)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert audit(html) == [], url
        for payload in PAYLOADS:
            if "<" in payload:
                assert payload not in html, (url, payload)


@pytest.mark.django_db
def test_payloads_are_shown_as_text(logged_in, hostile_world) -> None:  # type: ignore[no-untyped-def]
    run = hostile_world["run"]
    html = logged_in.get(f"/runs/{run.pk}/?task={hostile_world['task'].pk}").content.decode()
    # The user's text is there, escaped: names, errors, parameter values, log lines.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot; onmouseover=&quot;alert(8)" in html
    assert "&lt;/textarea&gt;&lt;script&gt;alert(10)&lt;/script&gt;" in html  # a log line
    # DAG labels are escaped by graphviz inside the SVG.
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert "<script" not in svg and "&lt;svg onload=alert(5)&gt;" in svg


@pytest.mark.django_db
def test_json_endpoints_and_errors_do_not_reflect_markup(logged_in, hostile_world) -> None:  # type: ignore[no-untyped-def]
    run, task = hostile_world["run"], hostile_world["task"]
    log = logged_in.get(f"/runs/{run.pk}/tasks/{task.pk}/log/")
    assert log["Content-Type"] == "application/json"
    assert log.json()["text"].splitlines() == PAYLOADS  # data, for textContent
    status = logged_in.get(f"/runs/{run.pk}/status/")
    assert status["Content-Type"] == "application/json" and "<script>" not in status.content.decode()
    assert status.json()["error"] == PAYLOADS[0]  # the data is intact, only its encoding escapes it
    assert "<" not in log.content.decode()
    for url in (
        "/runs/new/?version=<script>alert(1)</script>",
        "/runs/new/?clone=%22%3E%3Csvg%20onload%3Dalert(1)%3E",
        f"/runs/{run.pk}/panel/?node=<img src=x onerror=alert(1)>",
        "/artifacts/<script>alert(1)</script>/",
    ):
        response = logged_in.get(url, HTTP_X_CANAL_FRAGMENT="1")
        assert response.status_code == 404, url
        body = response.content.decode()
        assert "<script>alert(1)" not in body and "onerror=alert" not in body and "<svg onload" not in body
