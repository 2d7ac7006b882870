"""The Executions pages: every step of the namespace's runs, filtered by pipeline,
component, state and cache, sorted, paged in a fixed number of queries; one
execution's page with its run, inputs, outputs, artifacts and cache origin."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.choices import RuntimeState, TaskKind
from tests.factories import ArtifactFactory, NamespaceFactory, RunFactory, TaskFactory

# session, user, current namespace, the namespaces the filter options come from, the
# pipeline options, the component options, count, the page's ids, its rows (with their
# runs), switcher's namespaces
EXECUTIONS_LIST_QUERIES = 10


def _queries(client, url: str) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def _steps(count: int) -> None:
    for index in range(count):
        run = RunFactory(pipeline_name=f"pipe-{index % 3}")
        TaskFactory(run=run, kind=TaskKind.ROOT, name="root", key="root")
        TaskFactory(run=run, component_name=f"comp-{index % 4}", started_at=run.created_at)


@pytest.mark.django_db
def test_executions_list_uses_constant_queries(logged_in, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    _steps(5)
    small = _queries(logged_in, "/executions/?page_size=50")
    _steps(50)
    assert _queries(logged_in, "/executions/?page_size=50") == small
    with django_assert_num_queries(EXECUTIONS_LIST_QUERIES):
        response = logged_in.get("/executions/?page_size=50&sort=-duration")
    html = response.content.decode()
    # 50 steps on the page; groups (the root) are not executions.
    assert html.count("data-execution-id=") == 50
    assert ">root<" not in html


@pytest.mark.django_db
def test_executions_list_filters_and_sorts(logged_in) -> None:  # type: ignore[no-untyped-def]
    run_a = RunFactory(pipeline_name="train-pipe")
    run_b = RunFactory(pipeline_name="eval-pipe")
    origin = TaskFactory(run=run_a, name="prepare", component_name="comp-prepare")
    failed = TaskFactory(run=run_a, name="train", component_name="comp-train", state=RuntimeState.FAILED)
    cached = TaskFactory(run=run_b, name="prepare-again", component_name="comp-prepare", cached_from=origin)

    def ids(query: str) -> set[str]:
        html = logged_in.get(f"/executions/?{query}").content.decode()
        return {str(t.pk) for t in (origin, failed, cached) if f'data-execution-id="{t.pk}"' in html}

    assert ids("") == {str(origin.pk), str(failed.pk), str(cached.pk)}
    assert ids("state=FAILED") == {str(failed.pk)}
    assert ids("cache=cached") == {str(cached.pk)}
    assert ids("cache=executed") == {str(origin.pk), str(failed.pk)}
    assert ids("pipeline=eval-pipe") == {str(cached.pk)}
    assert ids("component=comp-prepare") == {str(origin.pk), str(cached.pk)}
    assert ids("component=comp-prepare&cache=executed") == {str(origin.pk)}
    assert ids("q=again") == {str(cached.pk)}
    html = logged_in.get("/executions/?sort=name").content.decode()
    assert html.index(f'data-execution-id="{origin.pk}"') < html.index(f'data-execution-id="{failed.pk}"')
    html = logged_in.get("/executions/?sort=-name").content.decode()
    assert html.index(f'data-execution-id="{failed.pk}"') < html.index(f'data-execution-id="{origin.pk}"')
    # Unknown values fall back instead of reaching the ORM or failing.
    assert logged_in.get("/executions/?sort=__class__&state=EVIL&cache=maybe").status_code == 200
    assert ids("state=EVIL&cache=maybe") == {str(origin.pk), str(failed.pk), str(cached.pk)}


@pytest.mark.django_db
def test_executions_are_namespace_scoped(logged_in, staff_user, client) -> None:  # type: ignore[no-untyped-def]
    mine = TaskFactory(run=RunFactory())
    elsewhere = TaskFactory(run=RunFactory(namespace=NamespaceFactory(name="other-team")))
    html = logged_in.get("/executions/").content.decode()
    assert str(mine.pk) in html and str(elsewhere.pk) not in html
    assert logged_in.get(f"/executions/{elsewhere.pk}/").status_code == 404
    assert logged_in.get("/executions/not-a-uuid/").status_code == 404
    client.force_login(staff_user)  # an admin sees every namespace's executions
    assert client.get(f"/executions/{elsewhere.pk}/").status_code == 200


@pytest.mark.django_db
def test_execution_detail_shows_run_io_artifacts_and_cache_origin(logged_in) -> None:  # type: ignore[no-untyped-def]
    origin = TaskFactory(name="prepare", component_name="comp-prepare")
    dataset = ArtifactFactory(producer_task=origin, name="dataset", schema_title="system.Dataset")
    ref = {"id": str(dataset.pk), "name": "dataset", "uri": dataset.uri, "schema_title": "system.Dataset"}
    origin.inputs = {"parameters": {"rows": 12}}
    origin.outputs = {"artifacts": {"dataset": [ref]}}
    origin.save()
    hit = TaskFactory(
        name="prepare", component_name="comp-prepare", cached_from=origin, outputs=origin.outputs
    )
    html = logged_in.get(f"/executions/{origin.pk}/").content.decode()
    assert f'href="/runs/{origin.run_id}/?task={origin.pk}#graph"' in html
    assert f'href="/artifacts/{dataset.pk}/"' in html
    assert "comp-prepare" in html and "rows" in html and "12" in html
    html = logged_in.get(f"/executions/{hit.pk}/").content.decode()
    assert f'href="/executions/{origin.pk}/"' in html  # cached-from link
    assert f'href="/artifacts/{dataset.pk}/"' in html  # the reused output


@pytest.mark.django_db
def test_executions_in_main_navigation(logged_in) -> None:  # type: ignore[no-untyped-def]
    html = logged_in.get("/executions/").content.decode()
    assert 'href="/executions/" class="active" aria-current="page"' in html
    assert 'href="/executions/"' in logged_in.get("/runs/").content.decode()


@pytest.mark.django_db
def test_executions_filter_offers_the_namespaces_pipelines_and_step_components(logged_in) -> None:  # type: ignore[no-untyped-def]
    """The pipeline choices come from the namespace's runs, the component choices from
    its steps only (a DAG's or a loop's component is no execution), and another
    namespace's names are never offered."""
    run = RunFactory(pipeline_name="train-pipe")
    TaskFactory(run=run, kind=TaskKind.ROOT, name="root", key="root", component_name="comp-root-dag")
    TaskFactory(run=run, kind=TaskKind.LOOP, component_name="comp-for-loop-1")
    TaskFactory(run=run, component_name="comp-train")
    TaskFactory(run=run, kind=TaskKind.IMPORTER, component_name="comp-importer")
    TaskFactory(run=run, component_name="")
    RunFactory(pipeline_name="")  # an inline spec with no name
    other = RunFactory(namespace=NamespaceFactory(name="other-team"), pipeline_name="secret-pipe")
    TaskFactory(run=other, component_name="comp-secret")
    html = logged_in.get("/executions/").content.decode()

    def options(name: str) -> list[str]:
        select = re.search(rf'<select name="{name}".*?</select>', html, re.S)
        assert select, name
        return re.findall(r'<option value="([^"]*)"', select.group(0))

    assert options("pipeline") == ["", "train-pipe"]
    assert options("component") == ["", "comp-importer", "comp-train"]
