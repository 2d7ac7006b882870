"""The list pages' FilterSets, applied by the selectors: each filter narrows the rows,
a value not offered is ignored (never a 500), a sort key not offered falls back to the
default, and a list's own parameter names are the only ones it reads."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from apps.core.choices import RuntimeState
from apps.runs import selectors as run_selectors
from apps.schedules import selectors as schedule_selectors
from tests.factories import RecurringRunFactory, RunFactory, TaskFactory


def _params(query: str) -> QueryDict:
    return QueryDict(query)


@pytest.mark.django_db
def test_execution_filters_narrow_and_ignore_values_not_offered(user) -> None:  # type: ignore[no-untyped-def]
    run = RunFactory(pipeline_name="train-pipe")
    fresh = TaskFactory(run=run, name="fit", component_name="comp-fit", state=RuntimeState.FAILED)
    cached = TaskFactory(run=run, name="fit-again", component_name="comp-fit", cached_from=fresh)
    other = TaskFactory(name="eval", component_name="comp-eval")

    def rows(query: str) -> set[str]:
        found = run_selectors.execution_filter(user=user, namespace=None, params=_params(query))
        return {task.name for task in found.qs}

    assert rows("q=fit") == {"fit", "fit-again"}
    assert rows("cache=cached") == {cached.name}
    assert rows("cache=executed") == {fresh.name, other.name}
    assert rows("state=FAILED") == {fresh.name}
    assert rows("pipeline=train-pipe&component=comp-fit") == {"fit", "fit-again"}
    # Not offered: ignored, and reported as not applied.
    found = run_selectors.execution_filter(
        user=user, namespace=None, params=_params("cache=sometimes&state=EVIL&sort=__class__")
    )
    assert {task.name for task in found.qs} == {"fit", "fit-again", "eval"}
    assert (found.applied("cache"), found.applied("state"), found.sort) == ("", "", "-created")


@pytest.mark.django_db
def test_the_task_table_reads_its_own_parameter_names(user) -> None:  # type: ignore[no-untyped-def]
    run = RunFactory()
    TaskFactory(run=run, name="alpha", state=RuntimeState.FAILED)
    TaskFactory(run=run, name="beta", state=RuntimeState.SUCCEEDED)

    def keys(query: str) -> list[str]:
        return [task.key for task in run_selectors.task_table_filter(run=run, params=_params(query)).qs]

    assert keys("tq=alp") == ["root/alpha"]
    assert keys("tstate=SUCCEEDED") == ["root/beta"]
    assert sorted(keys("q=alp&state=FAILED")) == ["root/alpha", "root/beta"]  # the runs table's names
    assert keys("tsort=-name") == ["root/beta", "root/alpha"]
    found = run_selectors.task_table_filter(run=run, params=_params("tsort=bogus&tstate=EVIL"))
    assert len(found.qs) == 2 and found.sort == "order" and found.applied("tstate") == ""


@pytest.mark.django_db
def test_an_experiments_recurring_tab_sorts_but_does_not_search(user) -> None:  # type: ignore[no-untyped-def]
    first = RecurringRunFactory(display_name="nightly")
    RecurringRunFactory(display_name="hourly", experiment=first.experiment)
    listed = schedule_selectors.recurring_run_filter(user=user, params=_params("q=night&sort=name"))
    assert [r.display_name for r in listed.qs] == ["nightly"]
    tab = schedule_selectors.recurring_run_filter(
        user=user, experiment=first.experiment, params=_params("q=night&sort=name"), search=False
    )
    assert [r.display_name for r in tab.qs] == ["hourly", "nightly"] and tab.query == ""


@pytest.mark.django_db
def test_bad_list_parameters_are_pages_not_errors(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = RunFactory()
    TaskFactory(run=run)
    for url in (
        "/executions/?cache=sometimes&state=EVIL&sort=__class__&pipeline=%00",
        f"/runs/{run.pk}/?tstate=EVIL&tsort=__dict__&tq=" + "x" * 300,
        "/artifacts/?type=nope&sort=-__class__",
        "/experiments/?sort=pk__in&q=" + "y" * 300,
        "/recurring-runs/?sort=;drop",
        "/pipelines/?sort=-",
    ):
        assert logged_in.get(url).status_code == 200, url
