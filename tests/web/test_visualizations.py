"""Artifact visualizations, one test per kind, through the artifact page (and the pure
helpers where a detail matters), plus preview/download confinement and the headers
that keep HTML artifacts away from the site's origin."""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser

import pytest

from apps.artifacts.visualizations import render_markdown, roc_from_metadata, roc_plot
from tests.factories import (
    ArtifactFactory,
    NamespaceFactory,
    RunFactory,
    TaskFactory,
    artifact_file,
    run_artifact_dir,
)


def _artifact(file_name: str, content: str | bytes, *, task=None, **kwargs):  # type: ignore[no-untyped-def]
    """An artifact whose file is where its run writes (the storage its namespace owns)."""
    task = task or TaskFactory()
    return ArtifactFactory(producer_task=task, uri=artifact_file(task, file_name, content), **kwargs)


def _page(client, artifact) -> str:  # type: ignore[no-untyped-def]
    response = client.get(f"/artifacts/{artifact.pk}/")
    assert response.status_code == 200
    return response.content.decode()


class _Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


@pytest.mark.django_db
def test_metrics_table(logged_in) -> None:  # type: ignore[no-untyped-def]
    artifact = ArtifactFactory(schema_title="system.Metrics", metadata={"accuracy": 0.91234567, "loss": 3})
    html = _page(logged_in, artifact)
    assert 'data-viz="metrics"' in html
    assert '<td>accuracy</td><td class="num mono">0.912346</td>' in html
    assert '<td>loss</td><td class="num mono">3</td>' in html


@pytest.mark.django_db
def test_classification_metrics_confusion_matrix_and_roc(logged_in) -> None:  # type: ignore[no-untyped-def]
    metadata = {
        "confusionMatrix": {
            "annotationSpecs": [{"displayName": "cat"}, {"displayName": "<i>dog</i>"}],
            "rows": [{"row": [8, 2]}, {"row": [1, 9]}],
        },
        "confidenceMetrics": [
            {"confidenceThreshold": 0.9, "falsePositiveRate": 0.1, "recall": 0.5},
            {"confidenceThreshold": 2.0, "falsePositiveRate": 0.0, "recall": 0.0},
            {"confidenceThreshold": 0.1, "falsePositiveRate": 0.7, "recall": 0.95},
        ],
    }
    artifact = ArtifactFactory(schema_title="system.ClassificationMetrics", metadata=metadata)
    html = _page(logged_in, artifact)
    grid = html[html.index('<table class="confusion-matrix"') :].split("</table>", 1)[0]
    assert grid.count('class="cm-cell') == 4 and grid.count("cm-diag") == 2
    assert "&lt;i&gt;dog&lt;/i&gt;" in grid and "<i>dog</i>" not in grid
    assert grid.count("cm-s10") == 1  # the largest cell is darkest (a CSS class: the CSP forbids style=)
    assert "style=" not in grid
    svg = html[html.index('<svg class="roc-curve"') :].split("</svg>", 1)[0]
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 3
    assert "threshold 0.9, FPR 0.1, TPR 0.5" in svg
    # Points are drawn in FPR order, inside the plot frame.
    plot = roc_plot([("x", roc_from_metadata(metadata) or [])])
    xs = [float(p.split(",")[0]) for p in plot["curves"][0]["points"].split()]
    assert xs == sorted(xs) and plot["left"] <= xs[0] and xs[-1] <= plot["right"]


@pytest.mark.django_db
def test_markdown_is_rendered_and_sanitised(logged_in) -> None:  # type: ignore[no-untyped-def]
    text = "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert(1)</script>\n\n[ok](https://example.com)\n"
    artifact = _artifact("report.md", text, schema_title="system.Markdown")
    html = _page(logged_in, artifact)
    body = html[html.index('<div class="markdown-body">') :].split("</figure>", 1)[0]
    assert "<h1>Title</h1>" in body and "<table>" in body
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">ok</a>' in body


MARKDOWN_ATTACKS = [
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<javascript:alert(1)>",
    "![x](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    '<img src=x onerror="alert(1)">',
    "<iframe src=https://evil.example></iframe>",
    '<svg onload="alert(1)"></svg>',
    "<style>body{display:none}</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    '[x](https://example.com "title" onmouseover="alert(1)")',
    "<details open ontoggle=alert(1)>",
    '<form action="javascript:alert(1)"><button>x</button></form>',
    "<object data=javascript:alert(1)></object>",
    "[x](  javascript:alert(1)  )",
    "<a href='&#x6A;avascript:alert(1)'>x</a>",
]


@pytest.mark.parametrize("attack", MARKDOWN_ATTACKS)
def test_markdown_attacks_are_inert(attack: str) -> None:
    html = render_markdown(f"before\n\n{attack}\n\nafter")
    for tag, attrs in tags_of(html):
        assert tag in {"p", "a", "img", "code", "pre", "em", "strong"}, (tag, html)
        for name, value in attrs.items():
            assert not name.startswith("on"), html
            assert name != "style", html
            if name in ("href", "src") and value:
                assert value.lower().startswith(("http://", "https://", "mailto:")), html


@pytest.mark.django_db
def test_html_goes_into_a_sandboxed_iframe_with_its_own_policy(logged_in) -> None:  # type: ignore[no-untyped-def]
    page = '<p id="x">hi</p><script>parent.document.title = "pwned"</script>" onload="alert(1)'
    artifact = _artifact("page.html", page, schema_title="system.HTML")
    html = _page(logged_in, artifact)
    frames = [attrs for tag, attrs in tags_of(html) if tag == "iframe"]
    assert len(frames) == 1
    frame = frames[0]
    assert frame["sandbox"] == "allow-scripts"  # never allow-same-origin
    assert "srcdoc" not in frame  # a srcdoc document would inherit the page's CSP
    assert "<script>parent" not in html  # only escaped, in the preview
    # The frame's document is the artifact, under a sandbox policy of its own.
    response = logged_in.get(frame["src"])
    assert response.status_code == 200
    assert response.content.decode() == page
    assert response["Content-Type"] == "text/html; charset=utf-8"
    csp = response["Content-Security-Policy"]
    assert csp.startswith("sandbox allow-scripts;")
    assert "allow-same-origin" not in csp
    assert "connect-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["X-Content-Type-Options"] == "nosniff"
    # Only HTML visualizations are served there.
    assert logged_in.get(frame["src"].replace("/frame/0/", "/frame/1/")).status_code == 404
    other = _artifact("notes.md", "# hi", schema_title="system.Markdown")
    assert logged_in.get(f"/artifacts/{other.pk}/frame/0/").status_code == 404


@pytest.mark.django_db
def test_html_opened_directly_is_sandboxed_by_csp(logged_in) -> None:  # type: ignore[no-untyped-def]
    artifact = _artifact("direct.html", "<script>1</script>", schema_title="system.HTML")
    response = logged_in.get(f"/artifacts/{artifact.pk}/view/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Content-Security-Policy"].startswith("sandbox;")
    assert "allow-same-origin" not in response["Content-Security-Policy"]
    assert "allow-scripts" not in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    download = logged_in.get(f"/artifacts/{artifact.pk}/download/")
    assert download["Content-Disposition"].startswith("attachment")
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Security-Policy"].startswith("sandbox;")
    assert b"".join(download.streaming_content) == b"<script>1</script>"
    # Any other text is served as text/plain, in the same sandbox.
    other = _artifact("notes.txt", "<b>hi</b>", schema_title="system.Artifact")
    response = logged_in.get(f"/artifacts/{other.pk}/view/")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Security-Policy"].startswith("sandbox;")


@pytest.mark.django_db
def test_dataset_csv_shows_the_first_100_rows(logged_in) -> None:  # type: ignore[no-untyped-def]
    rows = "id,name\n" + "".join(f"{i},row-{i}\n" for i in range(150))
    artifact = _artifact("data", rows, schema_title="system.Dataset")
    html = _page(logged_in, artifact)
    table = html[html.index('class="table compact data-table"') :].split("</table>", 1)[0]
    assert "<th>id</th><th>name</th>" in table
    assert table.count("<tr>") == 101  # header + 100 rows
    assert "row-99" in table and "row-100" not in table
    assert "Only the first 100 rows are shown." in html
    binary = _artifact("blob.bin", b"\x00\x01\x02", schema_title="system.Dataset")
    assert 'data-viz="table"' not in _page(logged_in, binary)


@pytest.mark.django_db
def test_v1_ui_metadata_outputs(logged_in) -> None:  # type: ignore[no-untyped-def]
    doc = {
        "outputs": [
            {
                "type": "confusion_matrix",
                "format": "csv",
                "schema": [
                    {"name": "target", "type": "CATEGORY"},
                    {"name": "predicted", "type": "CATEGORY"},
                    {"name": "count", "type": "NUMBER"},
                ],
                "labels": ["yes", "no"],
                "storage": "inline",
                "source": "yes,yes,10\nyes,no,2\nno,yes,3\nno,no,7\n",
            },
            {
                "type": "roc",
                "format": "csv",
                "schema": [{"name": "fpr"}, {"name": "tpr"}, {"name": "thresholds"}],
                "storage": "inline",
                "source": "0,0,1\n0.2,0.7,0.5\n1,1,0\n",
            },
            {
                "type": "table",
                "format": "csv",
                "header": ["k", "v"],
                "storage": "inline",
                "source": "a,1\nb,2\n",
            },
            {"type": "markdown", "storage": "inline", "source": "## Notes <img src=x onerror=alert(1)>"},
            {"type": "web-app", "storage": "inline", "source": "<h1>app</h1>"},
            {"type": "tensorboard", "source": "gs://bucket/logs"},
        ]
    }
    artifact = _artifact("ui-metadata.json", json.dumps(doc), name="mlpipeline-ui-metadata")
    html = _page(logged_in, artifact)
    assert html.count('class="cm-cell') == 4 and ">10<" in html and ">7<" in html
    assert html.count('<svg class="roc-curve"') == 1
    assert "<th>k</th><th>v</th>" in html and "<td>b</td><td>2</td>" in html
    notes = html.split('class="markdown-body"', 1)[1].split("</div>", 1)[0]
    assert "<h2>Notes &lt;img src=x onerror=alert(1)&gt;</h2>" in notes and "<img" not in notes
    assert 'sandbox="allow-scripts"' in html and "&lt;h1&gt;app&lt;/h1&gt;" in html
    assert "is not inline; Canal renders inline sources only" in html


@pytest.mark.django_db
def test_v1_mlpipeline_metrics(logged_in) -> None:  # type: ignore[no-untyped-def]
    doc = {"metrics": [{"name": "accuracy", "numberValue": 0.75, "format": "PERCENTAGE"}, {"name": "bad"}]}
    artifact = _artifact("metrics.json", json.dumps(doc), name="mlpipeline-metrics")
    html = _page(logged_in, artifact)
    assert '<td>accuracy</td><td class="num mono">75.00%</td>' in html and ">bad<" not in html


@pytest.mark.django_db
def test_task_panel_shows_the_visualizations_of_its_outputs(logged_in) -> None:  # type: ignore[no-untyped-def]
    task = TaskFactory()
    ArtifactFactory(producer_task=task, schema_title="system.Metrics", metadata={"f1": 0.5})
    _artifact("panel.md", "**bold**", task=task, schema_title="system.Markdown")
    html = logged_in.get(
        f"/runs/{task.run_id}/panel/", {"task": task.pk}, HTTP_X_CANAL_FRAGMENT="1"
    ).content.decode()
    assert 'data-ptab="viz"' in html and "<td>f1</td>" in html and "<strong>bold</strong>" in html


# --- preview and download confinement ---------------------------------------------------------------


@pytest.fixture
def directory_artifact(tmp_path):  # type: ignore[no-untyped-def]
    task = TaskFactory()
    base = run_artifact_dir(task.run) / task.name / "t" / "dir-artifact"
    (base / "sub").mkdir(parents=True, exist_ok=True)
    (base / "sub" / "a.txt").write_text("inside")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the root")
    link = base / "escape.txt"
    if not link.exists():
        os.symlink(secret, link)
    inside_link = base / "inside-link.txt"
    if not inside_link.exists():
        os.symlink(base / "sub" / "a.txt", inside_link)
    return ArtifactFactory(producer_task=task, schema_title="system.Dataset", uri=str(base))


TRAVERSALS = [
    "../dir-artifact/sub/a.txt",
    "..%2f..%2fsecret",
    "..%252f..%252fsecret",
    "/etc/passwd",
    "sub/../../x",
    "sub/a.txt#frag",
    "sub\\a.txt",
    "escape.txt",
    "./sub/a.txt",
    "sub//a.txt",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", TRAVERSALS)
def test_downloads_cannot_leave_the_artifact(logged_in, directory_artifact, path: str) -> None:  # type: ignore[no-untyped-def]
    for view in ("download", "view"):
        response = logged_in.get(f"/artifacts/{directory_artifact.pk}/{view}/", {"path": path})
        assert response.status_code == 404, (view, path)


@pytest.mark.django_db
def test_directory_artifacts_list_and_serve_their_files(logged_in, directory_artifact) -> None:  # type: ignore[no-untyped-def]
    html = _page(logged_in, directory_artifact)
    assert "sub/a.txt" in html and "escape.txt" not in html  # escaping symlinks are not even listed
    response = logged_in.get(f"/artifacts/{directory_artifact.pk}/download/", {"path": "sub/a.txt"})
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"inside"
    assert 'filename="a.txt"' in response["Content-Disposition"]
    assert logged_in.get(f"/artifacts/{directory_artifact.pk}/download/").status_code == 404  # a directory


@pytest.mark.django_db
def test_artifacts_outside_the_root_are_never_read(logged_in, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "host-file.html"
    outside.write_text("<h1>host secret</h1>")
    # A row may hold any URI (an old importer); Canal serves nothing its namespace does not own.
    artifact = ArtifactFactory(schema_title="system.HTML", uri=str(outside))
    html = _page(logged_in, artifact)
    assert "host secret" not in html and "not in its namespace&#x27;s storage" in html
    for view in ("download", "view"):
        assert logged_in.get(f"/artifacts/{artifact.pk}/{view}/").status_code == 404
    passwd = ArtifactFactory(schema_title="system.Artifact", uri="/etc/passwd")
    assert logged_in.get(f"/artifacts/{passwd.pk}/download/").status_code == 404
    assert "root:" not in _page(logged_in, passwd)


@pytest.mark.django_db
def test_artifacts_of_other_namespaces_are_404(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = RunFactory(namespace=NamespaceFactory(name="private"))
    artifact = _artifact("private.txt", "x", task=TaskFactory(run=run))
    for suffix in ("", "download/", "view/"):
        assert logged_in.get(f"/artifacts/{artifact.pk}/{suffix}").status_code == 404
    assert logged_in.get("/artifacts/not-a-number/").status_code == 404
    assert f"/artifacts/{artifact.pk}/" not in logged_in.get("/artifacts/").content.decode()


@pytest.mark.django_db
def test_artifacts_list_filters_by_type_and_links_to_producer(logged_in) -> None:  # type: ignore[no-untyped-def]
    task = TaskFactory(key="root/train")
    ArtifactFactory(producer_task=task, name="model", schema_title="system.Model")
    ArtifactFactory(producer_task=task, name="scores", schema_title="system.Metrics")
    html = logged_in.get("/artifacts/", {"type": "system.Model"}).content.decode()
    assert ">model<" in html and ">scores<" not in html
    assert f'href="/runs/{task.run_id}/?task={task.pk}#graph"' in html
    assert '<option value="system.Metrics"' in html
