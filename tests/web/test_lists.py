"""The list pages: a constant number of SQL queries whatever the page size (asserted
for a page of 50), filters, sorting, Active/Archived tabs, metric columns and bulk
actions on runs."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import clear_script_prefix, reverse, set_script_prefix

from apps.core.choices import RuntimeState, StorageState
from apps.core.listing import row_url
from apps.runs.models import Run
from tests.factories import (
    ArtifactFactory,
    ExperimentFactory,
    PipelineFactory,
    PipelineVersionFactory,
    RecurringRunFactory,
    RunFactory,
    TaskFactory,
    artifact_file,
)

# session, user, current namespace, count, page, switcher's namespaces (+ per-page extras)
# Each includes one query for the user's role in the namespace (which buttons to show).
# The runs page reads its page as ids, then those rows (apps.core.listing.IdsFirstPaginator).
RUNS_LIST_QUERIES = 9  # + one query for every metric column of the page
EXPERIMENTS_LIST_QUERIES = 8  # + one window-function query for every experiment's last 5 runs
PIPELINES_LIST_QUERIES = 7


def _queries(client, url: str) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def _runs_with_metrics(count: int) -> list[Run]:
    experiment = ExperimentFactory()
    version = PipelineVersionFactory()
    runs = []
    for index in range(count):
        run = RunFactory(experiment=experiment, pipeline_version=version, state=RuntimeState.SUCCEEDED)
        task = TaskFactory(run=run)
        ArtifactFactory(
            producer_task=task,
            name="metrics",
            schema_title="system.Metrics",
            metadata={"accuracy": index / 100},
        )
        v1 = artifact_file(
            task, "metrics.json", json.dumps({"metrics": [{"name": "loss", "numberValue": 1 - index / 100}]})
        )
        ArtifactFactory(producer_task=task, name="mlpipeline-metrics", uri=v1)
        runs.append(run)
    return runs


@pytest.mark.django_db
def test_runs_list_uses_constant_queries(logged_in, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    _runs_with_metrics(5)
    small = _queries(logged_in, "/runs/?page_size=50")
    _runs_with_metrics(45)
    assert _queries(logged_in, "/runs/?page_size=50") == small
    with django_assert_num_queries(RUNS_LIST_QUERIES):
        response = logged_in.get("/runs/?page_size=50&sort=-duration")
    html = response.content.decode()
    assert html.count('name="run" value=') == 50
    # Both kinds of metrics became columns, filled from one query.
    assert 'title="accuracy"' in html and 'title="loss"' in html


@pytest.mark.django_db
def test_experiment_page_lists_its_runs_in_constant_queries(logged_in) -> None:  # type: ignore[no-untyped-def]
    runs = _runs_with_metrics(5)
    experiment = runs[0].experiment
    other = RunFactory(display_name="in-another-experiment")  # same namespace, other experiment
    url = f"/experiments/{experiment.pk}/?page_size=50"
    small = _queries(logged_in, url)
    for run in _runs_with_metrics(45):
        Run.objects.filter(pk=run.pk).update(experiment=experiment)
    assert _queries(logged_in, url) == small
    html = logged_in.get(url).content.decode()
    assert html.count('name="run" value=') == 50
    assert other.display_name not in html and other.namespace_id == experiment.namespace_id


def _runs_by_accuracy(count: int, *, without: int) -> list[tuple[float | None, str]]:
    """``count`` runs with a shuffled ``accuracy`` metric (system.Metrics metadata) and
    ``without`` runs that have none; returns (accuracy, name) of each."""
    experiment = ExperimentFactory()
    made: list[tuple[float | None, str]] = []
    for index in range(count):
        value = ((index * 7) % count) / count  # distinct, not in creation order
        run = RunFactory(experiment=experiment, display_name=f"acc-{index:03d}", state=RuntimeState.SUCCEEDED)
        ArtifactFactory(
            producer_task=TaskFactory(run=run),
            name="metrics",
            schema_title="system.Metrics",
            metadata={"accuracy": value, "display_name": "metrics"},
        )
        made.append((value, run.display_name))
    for index in range(without):
        run = RunFactory(experiment=experiment, display_name=f"none-{index:03d}")
        made.append((None, run.display_name))
    return made


@pytest.mark.parametrize("prefix", ["/", "/canal/"])
@pytest.mark.parametrize(
    ("viewname", "value"),
    [
        ("runs:detail", "0b7cbb4e-5a7e-4bd0-9c47-7f1e0f2b9a11"),
        ("pipelines:detail", "a pipeline"),
        ("pipelines:detail", "p%20q?r#s&t;u:v@w~x"),
        ("schedules:detail", "caf\u00e9-\u2603"),
    ],
)
def test_row_url_is_what_reverse_gives(viewname: str, value: str, prefix: str) -> None:
    """A page reverses a route once and puts each row's id in place: the same URL as
    reversing it for that id, quoting and the script prefix included."""
    set_script_prefix(prefix)
    try:
        assert row_url(viewname)(value) == reverse(viewname, args=[value])
    finally:
        clear_script_prefix()


@pytest.mark.django_db
def test_runs_list_links_each_row_to_its_run_pipeline_schedule_and_experiment(logged_in) -> None:  # type: ignore[no-untyped-def]
    scheduled = RunFactory(
        pipeline_version=PipelineVersionFactory(),
        recurring_run=RecurringRunFactory(display_name="nightly"),
    )
    inline = RunFactory(pipeline_version=None, pipeline_spec=scheduled.pipeline_spec, recurring_run=None)
    html = logged_in.get("/runs/").content.decode()
    rows = dict(re.findall(r'<tr data-run-id="([^"]+)">(.*?)</tr>', html, re.S))
    assert set(rows) == {str(scheduled.pk), str(inline.pk)}
    version = scheduled.pipeline_version
    for href in (
        reverse("runs:detail", args=[scheduled.pk]),
        f"{reverse('pipelines:detail', args=[version.pipeline_id])}?version={version.pk}",
        reverse("schedules:detail", args=[scheduled.recurring_run_id]),
        reverse("experiments:detail", args=[scheduled.experiment_id]),
    ):
        assert f'href="{href}"' in rows[str(scheduled.pk)]
    links = re.findall(r'href="([^"]+)"', rows[str(inline.pk)])
    assert links == [
        reverse("runs:detail", args=[inline.pk]),
        reverse("experiments:detail", args=[inline.experiment_id]),
    ]


def _run_names(html: str) -> list[str]:
    return re.findall(r'aria-label="Select (?!all runs on this page)([^"]*)"', html)


@pytest.mark.django_db
def test_runs_list_sorts_by_a_metric_in_constant_queries(logged_in, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    made = _runs_by_accuracy(4, without=1)
    small = _queries(logged_in, "/runs/?page_size=50&sort=metric:accuracy")
    made += _runs_by_accuracy(46, without=4)
    assert _queries(logged_in, "/runs/?page_size=50&sort=metric:accuracy") == small
    with django_assert_num_queries(RUNS_LIST_QUERIES):
        response = logged_in.get("/runs/?page_size=50&sort=-metric:accuracy")
    # The 50 runs that have the metric fill the page; the 5 without it are on page 2.
    assert sorted(_run_names(response.content.decode())) == sorted(n for v, n in made if v is not None)


@pytest.mark.django_db
@pytest.mark.parametrize("descending", [False, True])
def test_runs_list_metric_sort_order_puts_runs_without_it_last(logged_in, descending: bool) -> None:  # type: ignore[no-untyped-def]
    made = _runs_by_accuracy(12, without=3)
    with_value = sorted((m for m in made if m[0] is not None), key=lambda m: m[0], reverse=descending)
    expected_head = [name for _, name in with_value]
    sort = "-metric:accuracy" if descending else "metric:accuracy"
    html = logged_in.get(f"/runs/?page_size=20&sort={sort}").content.decode()
    names = _run_names(html)
    assert names[: len(expected_head)] == expected_head
    assert sorted(names[len(expected_head) :]) == sorted(name for value, name in made if value is None)
    # The header is a sort link that flips the direction, and the column is shown.
    header = re.search(r'<a class="sort( asc| desc)" href="([^"]*)">accuracy</a>', html)
    assert header is not None
    assert header.group(1) == (" desc" if descending else " asc")
    flipped = "sort=metric%3Aaccuracy" if descending else "sort=-metric%3Aaccuracy"
    assert flipped in header.group(2)


@pytest.mark.django_db
def test_runs_list_v1_file_metrics_are_shown_but_not_sortable(logged_in) -> None:  # type: ignore[no-untyped-def]
    _runs_with_metrics(2)
    html = logged_in.get("/runs/").content.decode()
    # accuracy (metadata) is a sort link; loss (a v1 file the database cannot read) is not.
    assert re.search(r'<a class="sort[^"]*" href="[^"]*">accuracy</a>', html)
    assert re.search(r'<th scope="col" class="num metric-col" title="loss">loss</th>', html)
    # Asking for it anyway does not fail: the runs come back, none with a value first.
    assert len(_run_names(logged_in.get("/runs/?sort=metric:loss").content.decode())) == 2
    # Nor do hostile or oversized names: they are JSON-path parameters, never SQL.
    for name in ['a"b', "x') OR 1=1 --", "$.*", "[0]", "\\", "m" * 300, ""]:
        response = logged_in.get("/runs/", {"sort": f"-metric:{name}"})
        assert response.status_code == 200 and len(_run_names(response.content.decode())) == 2


@pytest.mark.django_db
def test_experiments_list_uses_constant_queries(logged_in, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    def make(n: int) -> None:
        for _ in range(n):
            experiment = ExperimentFactory()
            for state in ("SUCCEEDED", "FAILED", "RUNNING", "SUCCEEDED", "CANCELED", "PENDING"):
                RunFactory(experiment=experiment, state=state)

    make(2)
    small = _queries(logged_in, "/experiments/?page_size=50")
    make(50)
    assert _queries(logged_in, "/experiments/?page_size=50") == small
    with django_assert_num_queries(EXPERIMENTS_LIST_QUERIES):
        response = logged_in.get("/experiments/?page_size=50")
    html = response.content.decode()
    # Last 5 runs per experiment, as icons: 50 experiments x 5.
    assert html.count('class="state-icon') == 250


@pytest.mark.django_db
def test_pipelines_list_uses_constant_queries(logged_in, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    def make(n: int) -> None:
        for _ in range(n):
            pipeline = PipelineFactory(description="does things")
            PipelineVersionFactory(pipeline=pipeline)
            PipelineVersionFactory(pipeline=pipeline)

    make(2)
    small = _queries(logged_in, "/pipelines/?page_size=50")
    make(60)
    assert _queries(logged_in, "/pipelines/?page_size=50") == small
    with django_assert_num_queries(PIPELINES_LIST_QUERIES):
        response = logged_in.get("/pipelines/?page_size=50&sort=name")
    assert response.content.decode().count("?version=") == 50


@pytest.mark.django_db
def test_runs_list_filters_sorts_and_tabs(logged_in) -> None:  # type: ignore[no-untyped-def]
    RunFactory(display_name="alpha train", state=RuntimeState.SUCCEEDED)
    RunFactory(display_name="beta train", state=RuntimeState.FAILED)
    RunFactory(display_name="gamma eval", state=RuntimeState.FAILED, storage_state=StorageState.ARCHIVED)
    html = logged_in.get("/runs/?q=train").content.decode()
    assert "alpha train" in html and "beta train" in html and "gamma eval" not in html
    html = logged_in.get("/runs/?state=FAILED").content.decode()
    assert "beta train" in html and "alpha train" not in html and "gamma eval" not in html
    html = logged_in.get("/runs/?view=archived").content.decode()
    assert "gamma eval" in html and "alpha train" not in html
    html = logged_in.get("/runs/?sort=name").content.decode()
    assert html.index("alpha train") < html.index("beta train")
    html = logged_in.get("/runs/?sort=-name").content.decode()
    assert html.index("beta train") < html.index("alpha train")
    # Unknown sort keys and states fall back instead of reaching the ORM.
    assert logged_in.get("/runs/?sort=__class__&state=EVIL").status_code == 200


@pytest.mark.django_db
def test_runs_list_metric_columns_are_chosen(logged_in) -> None:  # type: ignore[no-untyped-def]
    _runs_with_metrics(2)
    html = logged_in.get("/runs/?metric=loss").content.decode()
    assert 'title="loss"' in html and 'title="accuracy"' not in html
    html = logged_in.get("/runs/?metric=").content.decode()
    assert 'title="loss"' not in html and 'class="num metric-col"' not in html


@pytest.mark.django_db
def test_bulk_archive_restore_delete(logged_in) -> None:  # type: ignore[no-untyped-def]
    done = RunFactory(state=RuntimeState.SUCCEEDED)
    active = RunFactory(state=RuntimeState.RUNNING)
    ids = [str(done.pk), str(active.pk)]
    response = logged_in.post("/runs/bulk/", {"action": "archive", "run": ids, "next": "/runs/"})
    assert response.status_code == 302 and response["Location"] == "/runs/"
    assert set(Run.objects.values_list("storage_state", flat=True)) == {StorageState.ARCHIVED}
    logged_in.post("/runs/bulk/", {"action": "restore", "run": ids})
    assert set(Run.objects.values_list("storage_state", flat=True)) == {StorageState.AVAILABLE}
    response = logged_in.post("/runs/bulk/", {"action": "delete", "run": ids}, follow=True)
    # The finished run is deleted; the running one is refused with the reason.
    assert list(Run.objects.values_list("pk", flat=True)) == [active.pk]
    assert "terminate it before deleting it" in response.content.decode()


@pytest.mark.django_db
def test_bulk_ignores_runs_of_other_namespaces_and_bad_input(logged_in) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import NamespaceFactory

    other = RunFactory(namespace=NamespaceFactory(name="elsewhere"), state=RuntimeState.SUCCEEDED)
    logged_in.post("/runs/bulk/", {"action": "delete", "run": [str(other.pk), "not-a-uuid"]})
    assert Run.objects.filter(pk=other.pk).exists()
    response = logged_in.post("/runs/bulk/", {"action": "explode", "run": [str(other.pk)]}, follow=True)
    assert "Choose archive, restore or delete." in response.content.decode()
    # An open redirect through ?next is refused.
    response = logged_in.post(
        "/runs/bulk/", {"action": "archive", "run": [], "next": "https://evil.example/"}
    )
    assert response["Location"] == "/runs/"
