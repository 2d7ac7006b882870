"""What Canal itself writes into a row fits its column, whatever the spec's names: a
value over a column's length is stored by SQLite and refused by MySQL, where it failed
the run (or, for a cache hit, every later run with caching on)."""

from __future__ import annotations

import pytest
from django.db.models import Value
from django.utils import timezone

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState, TaskKind
from apps.core.db import insert_bounded
from apps.core.services import namespace_ensure
from apps.engine.execution import iteration_display_name
from apps.engine.spec import MAX_NAME
from apps.runs.models import Run, Task
from apps.runs.services import run_advance, run_create
from apps.runs.services.local_plan import CACHE_STATUS_LENGTH, _mark_cached
from tests.engine.compiled import echo_each_ir
from tests.factories import RunFactory, TaskFactory

pytestmark = pytest.mark.django_db


def test_an_iteration_is_named_after_its_loop_within_a_display_name() -> None:
    assert iteration_display_name("for-loop-2", 7) == "for-loop-2-iteration-7"
    longest = iteration_display_name("L" * MAX_NAME, 9_999_999)
    assert len(longest) == MAX_NAME
    assert longest.endswith("…-iteration-9999999")


def test_a_loop_with_the_longest_display_name_plans_its_iterations() -> None:
    spec = echo_each_ir()
    loops = [task for task in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in task]
    assert len(loops) == 1
    loops[0]["taskInfo"]["name"] = "L" * MAX_NAME  # allowed: the spec's limit is the column's
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="long loop",
        pipeline_spec=spec,
        parameters={"words": ["a", "b", "c"]},
    )
    ready = run_advance(run_id=run.pk)
    assert Run.objects.get(pk=run.pk).error == ""  # on MySQL: Data too long for display_name
    assert len(ready) == 3
    names = sorted(
        Task.objects.filter(run=run, kind=TaskKind.ITERATION).values_list("display_name", flat=True)
    )
    assert [len(name) for name in names] == [MAX_NAME] * 3
    assert [name[-13:] for name in names] == ["…-iteration-0", "…-iteration-1", "…-iteration-2"]


def test_a_cache_hit_on_a_task_with_a_long_key_records_a_status_that_fits() -> None:
    origin = TaskFactory(run=RunFactory(), key="root/" + "k" * 500, state=RuntimeState.SUCCEEDED)
    task = TaskFactory(run=RunFactory(), state=RuntimeState.PENDING, state_history=[])
    _mark_cached(task, origin, timezone.now())
    task.save()  # on MySQL: Data too long for column 'cache_status'
    stored = Task.objects.get(pk=task.pk).cache_status
    assert len(stored) == CACHE_STATUS_LENGTH
    assert stored.startswith(f"cached from run {origin.run_id} / task root/kkk")
    assert stored.endswith("k…")
    short = TaskFactory(run=origin.run, key="root/train", state=RuntimeState.SUCCEEDED)
    _mark_cached(task, short, timezone.now())
    assert task.cache_status == f"cached from run {origin.run_id} / task root/train"


def test_insert_bounded_refuses_expressions() -> None:
    task = TaskFactory.build(run=RunFactory(), key="root/x")
    task.status_message = Value("compiled by the ORM, never by insert_bounded")
    with pytest.raises(ValueError, match="plain values"):
        insert_bounded(Task, [task])
    assert not Task.objects.filter(key="root/x").exists()
