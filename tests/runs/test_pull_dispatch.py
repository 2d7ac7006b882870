"""A wide fan-out without a broker message per step (issue 12, item 3).

Of the steps one advance makes ready, at most ``CANAL_DISPATCH_MESSAGES`` go out as
messages; a worker thread whose step ends with nothing handed to it takes the next
queued step of the run in the same group commit (``task_execute(pull=True)``). The
reaper re-queues a backlog only when none of the run's steps started lately.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from celery.signals import worker_shutting_down
from django.utils import timezone

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState, TaskKind
from apps.core.services import namespace_ensure
from apps.engine.model import NodeIO
from apps.runs import dispatch, tasks
from apps.runs.models import Run, Task
from apps.runs.services import local_steps, reaper, run_advance, run_create, runs_reap
from apps.runs.services.local_steps import StepOutcome
from tests.engine.compiled import fan_out_ir

pytestmark = pytest.mark.django_db


def _fan_out(width: int) -> tuple[Run, list[Any]]:
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="fan",
        pipeline_spec=fan_out_ir(),
        parameters={"numbers": list(range(width))},
    )
    ready = run_advance(run_id=run.pk)
    assert len(ready) == width
    return run, ready


def _finish(claim: Any, *, pull: bool) -> list[Any]:
    given = claim.launch.input_parameters  # what double / total were given
    value = sum(given["xs"]) if "xs" in given else 2 * given["x"]
    outcome = StepOutcome(outputs=NodeIO({"Output": value}), error="")
    return local_steps.record_outcome(
        claim.task_id, claim.token, claim.attempt, outcome, run_id=claim.run_id, pull=pull
    )


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ids of the step messages published (no broker)."""
    published: list[Any] = []
    monkeypatch.setattr(dispatch, "_send", lambda name, args, countdown=None: published.append(args[0]))
    return published


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_steps, "_committer", local_steps._Committer())
    monkeypatch.setattr(local_steps, "_preclaimed", local_steps.threading.local())


def test_a_step_that_unblocks_nothing_takes_the_next_queued_step_of_its_run() -> None:
    _run, ready = _fan_out(4)
    other, _ = _fan_out(2)  # another run's queued steps are never taken
    claim = local_steps._claim(ready[0])
    pulled = _finish(claim, pull=True)
    assert len(pulled) == 1
    assert pulled[0] in ready[1:]
    task = Task.objects.get(pk=pulled[0])
    assert task.state == RuntimeState.RUNNING
    assert task.attempt == 1
    # Claimed in the same transaction: running it takes no claim of its own.
    again = local_steps._claim(pulled[0])
    assert isinstance(again, local_steps._Claim)
    assert again.token == task.lease_owner
    assert not Task.objects.filter(run=other, kind=TaskKind.CONTAINER, state=RuntimeState.RUNNING).exists()


def test_without_pull_nothing_is_taken() -> None:
    _run, ready = _fan_out(3)
    claim = local_steps._claim(ready[0])
    assert _finish(claim, pull=False) == []
    assert Task.objects.filter(pk__in=ready[1:], state=RuntimeState.PENDING).count() == 2


def test_one_thread_pulling_runs_a_whole_fan_out_and_its_fan_in() -> None:
    run, ready = _fan_out(5)
    claim = local_steps._claim(ready[0])
    ran = []
    while isinstance(claim, local_steps._Claim):
        ran.append(claim.task_id)
        following = _finish(claim, pull=True)
        claim = local_steps._claim(following[0]) if following else None
    assert len(ran) == 6  # five iterations, then the fan-in handed over
    run.refresh_from_db()
    assert run.state == RuntimeState.SUCCEEDED, run.error


def test_no_step_is_pulled_before_its_retry_delay() -> None:
    _run, ready = _fan_out(3)
    first, second = local_steps._claim(ready[0]), local_steps._claim(ready[2])
    Task.objects.filter(pk=ready[1]).update(not_before=timezone.now() + timedelta(hours=1))
    assert _finish(first, pull=True) == []  # only ready[1] is queued, and it is not due
    assert Task.objects.get(pk=ready[1]).state == RuntimeState.PENDING
    Task.objects.filter(pk=ready[1]).update(not_before=timezone.now() - timedelta(seconds=1))
    assert _finish(second, pull=True) == [ready[1]]


def test_no_step_is_pulled_from_a_run_being_terminated() -> None:
    run, ready = _fan_out(3)
    claim = local_steps._claim(ready[0])
    Run.objects.filter(pk=run.pk).update(state=RuntimeState.CANCELING)
    assert _finish(claim, pull=True) == []
    assert not Task.objects.filter(pk__in=ready[1:], state=RuntimeState.RUNNING).exists()


def test_an_advance_sends_at_most_the_configured_number_of_messages(settings: Any, sent: list[Any]) -> None:
    settings.CANAL_DISPATCH_MESSAGES = 3
    dispatch.send_steps([f"step-{i}" for i in range(10)])
    assert sent == ["step-0", "step-1", "step-2"]
    sent.clear()
    dispatch.send_steps(["only"])
    assert sent == ["only"]


def test_the_reaper_requeues_a_backlog_only_when_the_run_s_steps_stopped_being_taken(
    settings: Any, django_capture_on_commit_callbacks: Any, sent: list[Any]
) -> None:
    _run, ready = _fan_out(3)
    local_steps._claim(ready[0])  # running, under a live lease
    long_ago = timezone.now() - timedelta(seconds=settings.CANAL_REDISPATCH_SECONDS + 5)
    Task.objects.filter(pk__in=ready[1:]).update(dispatched_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        report = runs_reap()
    assert report.redispatched == []
    assert sent == []
    # The worker running it went away: its lease lapses, and the backlog is queued again.
    Task.objects.filter(pk=ready[0]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        report = runs_reap()
    assert sorted(report.redispatched) == sorted(str(step) for step in ready[1:])
    assert sorted(map(str, sent)) >= sorted(str(step) for step in ready[1:])


def test_a_long_step_running_alone_does_not_hold_back_a_lost_message(
    settings: Any, django_capture_on_commit_callbacks: Any, sent: list[Any]
) -> None:
    _run, ready = _fan_out(2)
    local_steps._claim(ready[0])  # running under a live lease, but for a long time now
    long_ago = timezone.now() - timedelta(seconds=settings.CANAL_REDISPATCH_SECONDS + 5)
    Task.objects.filter(pk=ready[0]).update(started_at=long_ago)
    Task.objects.filter(pk=ready[1]).update(dispatched_at=long_ago)  # its message was lost
    with django_capture_on_commit_callbacks(execute=True):
        report = runs_reap()
    assert report.redispatched == [str(ready[1])]
    assert str(ready[1]) in map(str, sent)


def test_a_step_queued_much_longer_is_queued_again_even_while_the_run_s_steps_are_taken(
    settings: Any, django_capture_on_commit_callbacks: Any, sent: list[Any]
) -> None:
    # A chain keeps starting steps (each one recently) while a branch's message was lost.
    _run, ready = _fan_out(2)
    local_steps._claim(ready[0])  # started just now
    delay = settings.CANAL_REDISPATCH_SECONDS
    Task.objects.filter(pk=ready[1]).update(dispatched_at=timezone.now() - timedelta(seconds=2 * delay))
    with django_capture_on_commit_callbacks(execute=True):
        assert runs_reap().redispatched == []
    patience = reaper.WORKED_RUN_PATIENCE * delay
    Task.objects.filter(pk=ready[1]).update(dispatched_at=timezone.now() - timedelta(seconds=patience + 5))
    with django_capture_on_commit_callbacks(execute=True):
        assert runs_reap().redispatched == [str(ready[1])]
    assert str(ready[1]) in map(str, sent)


def test_a_worker_shutting_down_takes_no_more_queued_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, bool]] = []

    def execute(*, task_id: Any, pull: bool) -> list[Any]:
        calls.append((task_id, pull))
        return ["next"] if task_id == "first" else []

    monkeypatch.setattr(tasks, "task_execute", execute)
    monkeypatch.setattr(tasks, "_stopping", tasks.threading.Event())
    tasks._drive(["first"])
    assert calls == [("first", True), ("next", True)]
    calls.clear()
    worker_shutting_down.send(sender=None, sig="SIGTERM", how="Warm", exitcode=0)
    tasks._drive(["first"])
    # The step handed over still runs; no queued step is taken after it.
    assert calls == [("first", False), ("next", False)]
