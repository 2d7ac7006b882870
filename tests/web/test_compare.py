"""Run compare: parameters and metrics with differing rows highlighted, confusion
matrices side by side, ROC curves overlaid in one SVG, a per-step diff."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.core.choices import RuntimeState
from tests.factories import (
    ArtifactFactory,
    NamespaceFactory,
    PipelineVersionFactory,
    RunFactory,
    TaskFactory,
    artifact_file,
)


def _run(version, a: int, accuracy: float, output: int, cached: bool = False):  # type: ignore[no-untyped-def]
    run = RunFactory(
        pipeline_version=version, runtime_parameters={"a": a, "b": 5}, state=RuntimeState.SUCCEEDED
    )
    step = TaskFactory(run=run, key="root/train", name="train", outputs={"parameters": {"Output": output}})
    TaskFactory(run=run, key="root/report", name="report", outputs={"parameters": {"done": True}})
    if cached:
        step.cached_from = TaskFactory(key="root/train")
        step.save()
    ArtifactFactory(
        producer_task=step, name="metrics", schema_title="system.Metrics", metadata={"accuracy": accuracy}
    )
    ArtifactFactory(
        producer_task=step,
        name="classification",
        schema_title="system.ClassificationMetrics",
        metadata={
            "confusionMatrix": {
                "annotationSpecs": [{"displayName": "yes"}, {"displayName": "no"}],
                "rows": [{"row": [a, 1]}, {"row": [2, 8]}],
            },
            "confidenceMetrics": [
                {"confidenceThreshold": 1.0, "falsePositiveRate": 0.0, "recall": 0.0},
                {"confidenceThreshold": 0.5, "falsePositiveRate": 0.2, "recall": 0.8},
                {"confidenceThreshold": 0.0, "falsePositiveRate": 1.0, "recall": 1.0},
            ],
        },
    )
    return run


@pytest.mark.django_db
def test_compare_two_runs(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    first, second = _run(version, 10, 0.9, 13), _run(version, 1, 0.8, 4, cached=True)
    response = logged_in.get("/runs/compare/", {"run": [first.pk, second.pk]})
    assert response.status_code == 200
    html = response.content.decode()
    params = html[html.index('id="compare-params"') :].split("</table>", 1)[0]
    assert re.search(r'<tr class="diff" data-differs="1"><th scope="row" class="mono">a</th>', params)
    assert re.search(r'<tr class="" ><th scope="row" class="mono">b</th>', params)
    metrics = html[html.index('id="compare-metrics"') :].split("</table>", 1)[0]
    assert 'class="diff"' in metrics and "0.9" in metrics and "0.8" in metrics
    assert html.count('class="confusion-matrix"') == 2  # side by side
    roc = html[html.index('id="compare-roc"') :].split("</svg>", 1)[0]
    assert roc.count("<polyline") == 2  # overlaid in one SVG
    steps = html[html.index('id="compare-steps"') :].split("</table>", 1)[0]
    rows = {row.split("</th>", 1)[0].rsplit(">", 1)[-1]: row for row in steps.split("<tr")[2:]}
    assert rows["root/train"].startswith(' class="diff"')
    assert "Cached" in rows["root/train"] and 'class="changed"' in rows["root/train"]
    assert rows["root/report"].startswith(' class=""')


@pytest.mark.django_db
def test_compare_needs_two_to_ten_visible_runs(logged_in) -> None:  # type: ignore[no-untyped-def]
    runs = [RunFactory() for _ in range(11)]
    assert logged_in.get("/runs/compare/", {"run": [runs[0].pk]}).status_code == 302
    assert logged_in.get("/runs/compare/", {"run": [r.pk for r in runs]}).status_code == 302
    assert logged_in.get("/runs/compare/", {"run": f"{runs[0].pk},{runs[1].pk}"}).status_code == 200
    hidden = RunFactory(namespace=NamespaceFactory(name="hidden"))
    assert logged_in.get("/runs/compare/", {"run": [runs[0].pk, hidden.pk]}).status_code == 404


def _table(html: str, table_id: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The column headers and the rows (row header, cells) of one table, as text."""
    table = html[html.index(f'id="{table_id}"') :].split("</table>", 1)[0]
    head, body = table.split("</thead>", 1)

    def text(cell: str) -> str:
        return unescape(re.sub(r"<[^>]+>", "", cell)).strip()

    headers = [text(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)]
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        name = text(re.search(r"<th[^>]*>(.*?)</th>", row, re.S).group(1))  # type: ignore[union-attr]
        rows.append((name, [text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]))
    return headers, rows


def _metric_run(version, name: str, metadata: dict):  # type: ignore[no-untyped-def,type-arg]
    run = RunFactory(pipeline_version=version, display_name=name, state=RuntimeState.SUCCEEDED)
    step = TaskFactory(run=run, key="root/train", name="train")
    ArtifactFactory(producer_task=step, name="metrics", schema_title="system.Metrics", metadata=metadata)
    return run


@pytest.fixture
def three_runs(db):  # type: ignore[no-untyped-def]
    """Three runs whose metrics all differ, and where each has a metric of its own."""
    version = PipelineVersionFactory()
    return [
        _metric_run(version, "alpha", {"accuracy": 0.5, "loss": 3.0, "only-alpha": 11}),
        _metric_run(version, "beta", {"accuracy": 0.25, "loss": 1.0}),
        _metric_run(version, "gamma", {"accuracy": 0.75, "only-gamma": 33}),
    ]


EXPECTED = {
    "alpha": {"accuracy": "0.5", "loss": "3", "only-alpha": "11", "only-gamma": "—"},
    "beta": {"accuracy": "0.25", "loss": "1", "only-alpha": "—", "only-gamma": "—"},
    "gamma": {"accuracy": "0.75", "loss": "—", "only-alpha": "—", "only-gamma": "33"},
}


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_metric_values_sit_under_their_own_runs_header(logged_in, three_runs, order) -> None:  # type: ignore[no-untyped-def]
    selected = [three_runs[i] for i in order]
    html = logged_in.get("/runs/compare/", {"run": [r.pk for r in selected]}).content.decode()
    headers, rows = _table(html, "compare-metrics")
    assert headers[1:] == [r.display_name for r in selected]
    assert [name for name, _ in rows] == ["accuracy", "loss", "only-alpha", "only-gamma"]
    for metric, cells in rows:
        assert cells == [EXPECTED[run][metric] for run in headers[1:]], metric
    # Each run's header and its values are aligned the same way (numbers to the right).
    table = html[html.index('id="compare-metrics"') :].split("</table>", 1)[0]
    assert table.count('<th scope="col" class="num">') == 3
    assert table.count('<td class="num mono">') == 12


def _ranking_order(html: str) -> list[str]:
    return [name for name, _ in _table(html, "compare-ranking")[1]]


def test_metrics_table_sorts_the_runs_by_any_metric(logged_in, three_runs) -> None:  # type: ignore[no-untyped-def]
    ids = [r.pk for r in three_runs]
    html = logged_in.get("/runs/compare/", {"run": ids}).content.decode()
    headers, rows = _table(html, "compare-ranking")
    assert headers == ["Run", "accuracy", "loss", "only-alpha", "only-gamma"]
    assert _ranking_order(html) == ["alpha", "beta", "gamma"]  # as selected, until sorted
    for name, cells in rows:
        assert cells == [EXPECTED[name][m] for m in headers[1:]]

    def get(**params: str) -> str:
        return logged_in.get("/runs/compare/", {"run": ids, **params}).content.decode()

    assert _ranking_order(get(sort="accuracy")) == ["gamma", "alpha", "beta"]  # descending first
    assert _ranking_order(get(sort="accuracy", dir="asc")) == ["beta", "alpha", "gamma"]
    # Runs without the metric come last, in either direction.
    assert _ranking_order(get(sort="loss", dir="asc")) == ["beta", "alpha", "gamma"]
    assert _ranking_order(get(sort="loss", dir="desc")) == ["alpha", "beta", "gamma"]
    assert _ranking_order(get(sort="only-gamma"))[0] == "gamma"

    # The header links are real links (no JavaScript needed): they keep the runs and
    # flip the direction of the active column.
    sorted_page = get(sort="accuracy")
    link = re.search(r'<a class="sort desc" href="([^"]+)"[^>]*>accuracy</a>', sorted_page)
    assert link is not None
    query = parse_qs(urlsplit(unescape(link.group(1))).query)
    assert query["run"] == [str(pk) for pk in ids]
    assert query["sort"] == ["accuracy"] and query["dir"] == ["asc"]
    assert 'aria-sort="descending"' in sorted_page

    unknown = logged_in.get("/runs/compare/", {"run": ids, "sort": "<nope>"})
    assert unknown.status_code == 200
    page = unknown.content.decode()
    assert "There is no metric named &#x27;&lt;nope&gt;&#x27;" in page
    assert _ranking_order(page) == ["alpha", "beta", "gamma"]


def test_roc_legend_follows_the_order_of_the_runs(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    runs = [_run(version, n, 0.5, n) for n in (1, 2, 3)]
    for run, name in zip(runs, ("first", "second", "third"), strict=True):
        run.display_name = name
        run.save()
    # Selected newest first, as the runs list shows them: the artifacts were written the
    # other way round, and the legend must still follow the columns.
    selected = list(reversed(runs))
    html = logged_in.get("/runs/compare/", {"run": [r.pk for r in selected]}).content.decode()
    legend = html[html.index('class="roc-legend"') :].split("</ul>", 1)[0]
    labels = [re.sub(r"<[^>]+>", "", item).split(" · ")[0].strip() for item in legend.split("<li>")[1:]]
    assert labels == ["third", "second", "first"]
    series = re.findall(r'<g class="roc-series" data-label="([^"]+) · ', html)
    assert series == ["third", "second", "first"]


def test_loop_iterations_sort_naturally(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    runs = [RunFactory(pipeline_version=version) for _ in range(2)]
    for run in runs:
        for i in (10, 2, 0, 1, 11):
            TaskFactory(run=run, key=f"root/for-loop-2#{i}/train", name="train")
    html = logged_in.get("/runs/compare/", {"run": [r.pk for r in runs]}).content.decode()
    keys = [name for name, _ in _table(html, "compare-steps")[1]]
    assert keys == [f"root/for-loop-2#{i}/train" for i in (0, 1, 2, 10, 11)]
    # Digits that are not ASCII (a task named "x²") are text, not a number to parse.
    TaskFactory(run=runs[0], key="root/x1²2", name="x")
    response = logged_in.get("/runs/compare/", {"run": [r.pk for r in runs]})
    assert response.status_code == 200
    assert [name for name, _ in _table(response.content.decode(), "compare-steps")[1]][-1] == "root/x1²2"


def _document_run(version, name: str, markdown: str | None, page: str | None):  # type: ignore[no-untyped-def]
    run = RunFactory(pipeline_version=version, display_name=name, state=RuntimeState.SUCCEEDED)
    step = TaskFactory(run=run, key="root/report", name="report")
    if markdown is not None:
        ArtifactFactory(
            producer_task=step,
            name="summary",
            schema_title="system.Markdown",
            uri=artifact_file(step, "summary.md", markdown),
        )
    if page is not None:
        ArtifactFactory(
            producer_task=step,
            name="page",
            schema_title="system.HTML",
            uri=artifact_file(step, "page.html", page),
        )
    return run


def test_markdown_and_html_side_by_side(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    runs = [
        _document_run(
            version, "one", "# Report one\n\n**bold** <script>alert(1)</script>", "<p>page one</p>"
        ),
        _document_run(version, "two", "# Report two\n\n<img src=x onerror=alert(2)>", None),
        _document_run(version, "three", None, "<script>document.title='three'</script>"),
    ]
    html = logged_in.get("/runs/compare/", {"run": [r.pk for r in runs]}).content.decode()
    markdown = html[html.index('id="compare-markdown"') :].split("</section>", 1)[0]
    columns = markdown.split('<div class="doc-column"')[1:]
    assert [re.search(r'data-run-id="([^"]+)"', c).group(1) for c in columns] == [str(r.pk) for r in runs]  # type: ignore[union-attr]
    assert "<h1>Report one</h1>" in columns[0] and "<strong>bold</strong>" in columns[0]
    assert "<h1>Report two</h1>" in columns[1]
    assert "not in this run" in columns[2]
    # Cleaned by nh3 as on the run page: no script, no event handler.
    assert not re.search(r"<script|<img[^>]*onerror", markdown), markdown

    section = html[html.index('id="compare-html"') :].split("</section>", 1)[0]
    columns = section.split('<div class="doc-column"')[1:]
    assert len(columns) == 3 and "not in this run" in columns[1]
    frames = re.findall(r"<iframe[^>]*>", section)
    assert len(frames) == 2
    for frame in frames:  # exactly as the run page frames HTML: sandboxed, by URL, never srcdoc
        assert 'sandbox="allow-scripts"' in frame and "srcdoc" not in frame
    # The page itself never carries the artifacts' HTML; the frame URL serves it under its own CSP.
    assert "page one" not in html and "document.title" not in html
    src = re.search(r'src="([^"]+)"', frames[0]).group(1)  # type: ignore[union-attr]
    framed = logged_in.get(src)
    assert framed.status_code == 200 and b"<p>page one</p>" in framed.content
    assert "sandbox" in framed["Content-Security-Policy"]


@pytest.mark.django_db
def test_compare_from_the_runs_list_keeps_the_csrf_token_out_of_the_url(csrf_client) -> None:  # type: ignore[no-untyped-def]
    runs = [RunFactory() for _ in range(3)]
    page = csrf_client.get("/runs/").content.decode()
    form = page[page.index('class="bulk-form"') :].split("</form>", 1)[0]
    # The selection form is a POST form; no button submits it as GET.
    assert 'formmethod="get"' not in form and 'method="post"' in page.split('class="bulk-form"')[0][-80:]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    response = csrf_client.post(
        "/runs/bulk/",
        {"csrfmiddlewaretoken": token, "action": "compare", "run": [str(r.pk) for r in runs]},
    )
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == "/runs/compare/"
    assert parse_qs(target.query) == {"run": [str(r.pk) for r in runs]}
    assert csrf_client.get(response["Location"]).status_code == 200
    # An old URL that carries a token is sent on without it.
    stale = csrf_client.get(
        "/runs/compare/", {"run": [str(r.pk) for r in runs[:2]], "csrfmiddlewaretoken": "x"}
    )
    assert stale.status_code == 302
    assert "csrfmiddlewaretoken" not in stale["Location"]
    assert parse_qs(urlsplit(stale["Location"]).query) == {"run": [str(r.pk) for r in runs[:2]]}


def test_unreadable_or_oversized_documents_are_notices_not_errors(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    runs = [RunFactory(pipeline_version=version, display_name=n) for n in ("gone", "huge")]
    gone_task = TaskFactory(run=runs[0], key="root/report", name="report")
    ArtifactFactory(
        producer_task=gone_task,
        name="summary",
        schema_title="system.Markdown",
        uri=artifact_file(gone_task, "summary.md", "x").replace("summary.md", "missing.md"),
    )
    huge_task = TaskFactory(run=runs[1], key="root/report", name="report")
    ArtifactFactory(
        producer_task=huge_task,
        name="page",
        schema_title="system.HTML",
        uri=artifact_file(huge_task, "page.html", "<p>" + "x" * (2 * 1024 * 1024 + 1)),
    )
    response = logged_in.get("/runs/compare/", {"run": [r.pk for r in runs]})
    assert response.status_code == 200
    html = response.content.decode()
    markdown = html[html.index('id="compare-markdown"') :].split("</section>", 1)[0]
    assert "not in the store" in markdown
    section = html[html.index('id="compare-html"') :].split("</section>", 1)[0]
    assert "larger than 2 MiB" in section and "<iframe" not in section


def _queries_for_documents(client, per_run: int) -> int:  # type: ignore[no-untyped-def]
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    version = PipelineVersionFactory()
    runs = []
    for r in range(3):
        run = RunFactory(pipeline_version=version, display_name=f"docs-{per_run}-{r}")
        task = TaskFactory(run=run, key="root/report", name="report")
        for n in range(per_run):
            ArtifactFactory(
                producer_task=task,
                name=f"notes-{n}",
                schema_title="system.Markdown",
                uri=artifact_file(task, f"notes-{n}.md", f"# notes {n}"),
            )
            ArtifactFactory(
                producer_task=task,
                name=f"page-{n}",
                schema_title="system.HTML",
                uri=artifact_file(task, f"page-{n}.html", f"<p>{n}</p>"),
            )
        runs.append(run)
    with CaptureQueriesContext(connection) as queries:
        html = client.get("/runs/compare/", {"run": [r.pk for r in runs]}).content.decode()
    assert html.count("<iframe") == 3 * per_run
    return len(queries)


def test_documents_add_no_query_per_artifact(logged_in) -> None:  # type: ignore[no-untyped-def]
    assert _queries_for_documents(logged_in, 1) == _queries_for_documents(logged_in, 3)
