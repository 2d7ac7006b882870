"""The service keeps each run's engine between advances (issue 12, item 1).

A worker builds a run's ``ActiveExecution`` once, keeps it with the run's records
(``records.cached_records``) and feeds it only the rows that changed; it is rebuilt
after a rollback, a run retry or in a process that never saw the run. Steps are
finished here through the services a worker calls, without a worker process, and each
transaction's on-commit callbacks run as they would in production.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import OperationalError, transaction

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.engine.execution import ActiveExecution
from apps.engine.model import NodeIO
from apps.runs.models import Run, Task
from apps.runs.services import local_plan, records, run_advance, run_create
from apps.runs.services.local_steps import StepOutcome, advance_if_needed, finish_attempt
from tests.engine.compiled import fan_out_ir

pytestmark = pytest.mark.django_db


class _Counting(ActiveExecution):
    built = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).built += 1
        super().__init__(*args, **kwargs)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> type[_Counting]:
    """Count the engines the planner builds (the real engine, counted)."""
    _Counting.built = 0
    monkeypatch.setattr(local_plan, "ActiveExecution", _Counting)
    records.forget_all()
    yield _Counting
    records.forget_all()


@contextmanager
def _committing(capture: Any) -> Iterator[None]:
    """One transaction whose on-commit callbacks run, as in a worker (the test's own
    transaction never commits)."""
    with capture(execute=True), transaction.atomic():
        yield


def _start(numbers: list[int], capture: Any) -> tuple[Run, list[Any]]:
    with _committing(capture):
        run = run_create(
            namespace=namespace_ensure(actor=OPERATOR),
            actor=OPERATOR,
            display_name="fan",
            pipeline_spec=fan_out_ir(),
            parameters={"numbers": numbers},
        )
    with _committing(capture):
        ready = run_advance(run_id=run.pk)
    return run, ready


def _finish(run: Run, step_id: Any, capture: Any) -> list[Any]:
    """Succeed one step as a worker records it, then advance as the worker does."""
    with _committing(capture):
        locked = Run.objects.select_for_update().get(pk=run.pk)
        Task.objects.filter(pk=step_id).update(state=RuntimeState.RUNNING)
        task = Task.objects.get(pk=step_id)
        given = task.inputs["parameters"]
        result = sum(given["xs"]) if "xs" in given else 2 * given["x"]  # what total / double return
        finish_attempt(locked, task, 1, StepOutcome(outputs=NodeIO({"Output": result}), error=""))
        Run.objects.filter(pk=run.pk).update(needs_advance=True)
    with _committing(capture):
        return advance_if_needed(run_id=run.pk)


def _drive(run: Run, ready: list[Any], capture: Any) -> None:
    queue = list(ready)
    while queue:
        queue += _finish(run, queue.pop(0), capture)


def _kept(run: Run) -> Any:
    entry = records._cache.get(run.pk)
    assert entry is not None and entry.engine is not None
    return entry.engine


def _total(run: Run) -> Any:
    """The sum the fan-in step was given (what dsl.Collected gathered)."""
    return sum(Task.objects.get(run=run, key="root/total").inputs["parameters"]["xs"])


def test_a_run_is_planned_by_one_engine_fed_what_changed(
    builds: type[_Counting], django_capture_on_commit_callbacks: Any
) -> None:
    run, ready = _start(list(range(12)), django_capture_on_commit_callbacks)
    assert len(ready) == 12
    _drive(run, ready, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RuntimeState.SUCCEEDED, run.error
    assert _total(run) == sum(2 * x for x in range(12))
    # 14 advances (the start, 12 completions, the total), one engine.
    assert builds.built == 1


def _last_completion_cost(n: int, capture: Any) -> int:
    run, ready = _start(list(range(n)), capture)
    for step_id in ready[:-1]:
        assert _finish(run, step_id, capture) == []
    before = _kept(run).operations.visited
    (total_step,) = _finish(run, ready[-1], capture)
    assert Task.objects.get(pk=total_step).key == "root/total"
    return _kept(run).operations.visited - before


def test_the_last_completion_costs_the_engine_the_same_at_200_iterations_as_at_10(
    builds: type[_Counting], django_capture_on_commit_callbacks: Any
) -> None:
    small = _last_completion_cost(10, django_capture_on_commit_callbacks)
    big = _last_completion_cost(200, django_capture_on_commit_callbacks)
    assert builds.built == 2  # one per run
    assert big == small
    # A rebuild walks every iteration: what a kept engine saves.
    assert small < 40


def test_a_rolled_back_advance_leaves_no_engine_behind(
    builds: type[_Counting], monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    run, ready = _start([1, 2, 3], django_capture_on_commit_callbacks)
    kept = _kept(run)
    real_apply = local_plan._apply

    def lose_connection(*args: Any, **kwargs: Any) -> Any:
        real_apply(*args, **kwargs)
        raise OperationalError("connection lost while writing the plan")

    monkeypatch.setattr(local_plan, "_apply", lose_connection)
    with pytest.raises(OperationalError):
        _finish(run, ready[0], django_capture_on_commit_callbacks)
    # The engine had planned what the rolled-back transaction never wrote: it is gone.
    assert records._cache.get(run.pk) is None
    monkeypatch.setattr(local_plan, "_apply", real_apply)
    with _committing(django_capture_on_commit_callbacks):
        assert run_advance(run_id=run.pk) == []  # the flag's advance, on rebuilt state
    assert _kept(run) is not kept
    _drive(run, ready[1:], django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RuntimeState.SUCCEEDED, run.error
    assert _total(run) == 12
    assert builds.built == 2


def test_a_worker_whose_engine_missed_advances_catches_up_from_the_rows(
    builds: type[_Counting], django_capture_on_commit_callbacks: Any
) -> None:
    # Another worker advanced the run while this one's copy stood still: it reads the
    # rows newer than its copy, feeds them, and plans what a rebuild would.
    run, ready = _start([1, 2, 3, 4], django_capture_on_commit_callbacks)
    stale = copy.deepcopy(records._cache[run.pk])
    _finish(run, ready[0], django_capture_on_commit_callbacks)
    _finish(run, ready[1], django_capture_on_commit_callbacks)
    _finish(run, ready[2], django_capture_on_commit_callbacks)
    records._cache[run.pk] = stale
    (total_step,) = _finish(run, ready[3], django_capture_on_commit_callbacks)
    assert _kept(run) is stale.engine  # fed, not rebuilt
    _drive(run, [total_step], django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RuntimeState.SUCCEEDED, run.error
    assert _total(run) == 20
    assert builds.built == 1


def test_an_engine_that_missed_iterations_created_later_catches_up_without_a_rebuild(
    builds: type[_Counting], django_capture_on_commit_callbacks: Any
) -> None:
    # With parallelism 1 each iteration is created when the one before it finishes, and
    # an iteration's group is finished (a newer revision) after its step: the rows this
    # worker missed must reach its engine parents first, or it rebuilds from every row.
    capture = django_capture_on_commit_callbacks
    with _committing(capture):
        run = run_create(
            namespace=namespace_ensure(actor=OPERATOR),
            actor=OPERATOR,
            display_name="fan",
            pipeline_spec=fan_out_ir(parallelism=1),
            parameters={"numbers": [1, 2, 3, 4]},
        )
    with _committing(capture):
        ready = run_advance(run_id=run.pk)
    assert len(ready) == 1
    stale = copy.deepcopy(records._cache[run.pk])
    ready = _finish(run, ready[0], capture)
    ready = _finish(run, ready[0], capture)
    records._cache[run.pk] = stale  # this worker missed those two advances
    ready = _finish(run, ready[0], capture)
    assert _kept(run) is stale.engine  # fed, not rebuilt
    _drive(run, ready, capture)
    run.refresh_from_db()
    assert run.state == RuntimeState.SUCCEEDED, run.error
    assert _total(run) == 20
    assert builds.built == 1


def test_a_finished_run_s_engine_is_not_kept(
    builds: type[_Counting], django_capture_on_commit_callbacks: Any
) -> None:
    run, ready = _start([1, 2], django_capture_on_commit_callbacks)
    assert records._cache.get(run.pk) is not None
    _drive(run, ready, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RuntimeState.SUCCEEDED, run.error
    assert records._cache.get(run.pk) is None  # its memory goes back for the next runs


def test_the_kept_engines_are_bounded_by_their_nodes_not_only_by_runs(
    builds: type[_Counting], monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    first, _ = _start(list(range(20)), django_capture_on_commit_callbacks)
    held = len(records._cache[first.pk].ids)
    monkeypatch.setattr(records, "CACHED_NODES", held + 5)
    second, _ = _start(list(range(20)), django_capture_on_commit_callbacks)
    # Both would fit by count of runs (64); by nodes only the latest does.
    assert records._cache.get(first.pk) is None
    assert records._cache.get(second.pk) is not None
    third, _ = _start(list(range(40)), django_capture_on_commit_callbacks)
    assert list(records._cache) == [third.pk]  # larger than the bound alone: still kept
