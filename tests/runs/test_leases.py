"""A worker renews the leases of all its running steps with one UPDATE (issue 12, item 2).

Each running step's heartbeat used to send its own UPDATE; now the first heartbeat
due renews every lease the worker holds, and the others answer from that renewal.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.engine.model import NodeIO
from apps.runs.models import Run, Task
from apps.runs.services import local_steps, run_advance, run_create
from apps.runs.services.local_steps import LeaseLost, StepCanceled
from tests.engine.compiled import fan_out_ir

pytestmark = pytest.mark.django_db


def _running(count: int) -> tuple[Run, list[Any]]:
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="fan",
        pipeline_spec=fan_out_ir(),
        parameters={"numbers": list(range(count))},
    )
    claims = [local_steps._claim(step) for step in run_advance(run_id=run.pk)]
    return run, claims


@pytest.fixture
def leases(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    # Renewals are due only when a test says so (renewed_at), never by the clock.
    settings.CANAL_HEARTBEAT_SECONDS = 3600
    monkeypatch.setattr(local_steps, "_committer", local_steps._Committer())  # nothing left from other tests
    leases = local_steps._Leases()
    monkeypatch.setattr(local_steps, "_leases", leases)
    return leases


def _updates(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]


def test_one_update_renews_every_running_step_of_the_worker(leases: Any) -> None:
    _run, claims = _running(5)
    for claim in claims:
        leases.hold(claim)
    before = dict(
        Task.objects.filter(pk__in=[c.task_id for c in claims]).values_list("id", "lease_expires_at")
    )
    with CaptureQueriesContext(connection) as queries:
        for claim in claims:  # five heartbeats due at once
            leases.check(claim)
    assert len(_updates(queries)) == 1
    after = dict(
        Task.objects.filter(pk__in=[c.task_id for c in claims]).values_list("id", "lease_expires_at")
    )
    assert all(after[step] > before[step] for step in before)
    # Within half an interval, heartbeats need no database at all.
    with CaptureQueriesContext(connection) as queries:
        leases.check(claims[0])
    assert queries.captured_queries == []


def test_a_lease_taken_over_stops_only_its_step(leases: Any) -> None:
    _run, claims = _running(3)
    for claim in claims:
        leases.hold(claim)
    Task.objects.filter(pk=claims[1].task_id).update(lease_owner="reaper-gave-it-to-another-worker")
    leases.renewed_at = float("-inf")  # the next heartbeat is due
    leases.check(claims[0])
    with pytest.raises(LeaseLost):
        leases.check(claims[1])
    leases.check(claims[2])
    assert Task.objects.get(pk=claims[1].task_id).lease_owner == "reaper-gave-it-to-another-worker"


def test_a_run_being_terminated_stops_its_steps(leases: Any) -> None:
    run, claims = _running(2)
    _other, others = _running(1)
    for claim in [*claims, *others]:
        leases.hold(claim)
    Run.objects.filter(pk=run.pk).update(state=RuntimeState.CANCELING)
    leases.renewed_at = float("-inf")
    for claim in claims:
        with pytest.raises(StepCanceled):
            leases.check(claim)
    leases.check(others[0])  # another run's step goes on


def test_a_step_just_claimed_is_not_judged_by_an_older_renewal(leases: Any) -> None:
    _run, claims = _running(2)
    leases.hold(claims[0])
    leases.check(claims[0])  # a renewal that did not know the second step
    leases.hold(claims[1])
    with CaptureQueriesContext(connection) as queries:
        leases.check(claims[1])
    assert queries.captured_queries == []
    leases.release(claims[1])


def test_a_running_step_s_command_line_is_stored_by_the_next_heartbeat(leases: Any) -> None:
    # Not in a write transaction of its own: the first renewal due stores the command
    # lines of every step the worker is running.
    _run, claims = _running(2)
    first, second = claims
    for claim, text in ((first, "echo one"), (second, "echo two")):
        local_steps._save_argv(claim, ["sh", "-c", text])
        leases.hold(claim)
    assert Task.objects.get(pk=first.task_id).command != ["sh", "-c", "echo one"]
    leases.check(first)
    for claim, text in ((first, "echo one"), (second, "echo two")):
        task = Task.objects.get(pk=claim.task_id)
        assert task.command == ["sh", "-c", text]
        assert task.attempts.get(number=claim.attempt).command == ["sh", "-c", text]


def test_a_short_step_s_command_line_is_stored_with_its_end_in_no_write_of_its_own(leases: Any) -> None:
    _run, (claim,) = _running(1)
    local_steps._save_argv(claim, ["sh", "-c", "echo short"])
    leases.hold(claim)
    leases.release(claim)  # it ended before any renewal was due
    outcome = local_steps.StepOutcome(
        outputs=NodeIO({"Output": 2}), error="", exit_code=0, argv=["sh", "-c", "echo short"]
    )
    with CaptureQueriesContext(connection) as queries:
        local_steps.record_outcome(claim.task_id, claim.token, claim.attempt, outcome, run_id=claim.run_id)
    task = Task.objects.get(pk=claim.task_id)
    assert task.state == RuntimeState.SUCCEEDED
    assert task.command == ["sh", "-c", "echo short"]
    assert task.attempts.get(number=claim.attempt).command == ["sh", "-c", "echo short"]
    # Two updates name the command: those of the attempt's end and the task's outcome.
    with_command = [sql for sql in _updates(queries) if "command" in sql]
    assert len(with_command) == 2
    assert all("finished_at" in sql for sql in with_command)
    leases.check(claim)  # a later renewal has nothing left to store
    assert Task.objects.get(pk=claim.task_id).command == ["sh", "-c", "echo short"]


def test_a_lock_conflict_while_renewing_does_not_stop_the_steps(
    leases: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # MariaDB may pick the renewal as a deadlock victim against a group commit; the
    # leases are good for a whole lease period, so the steps go on and the next
    # heartbeat renews. A database unreachable for a whole lease stops them.
    from django.db import OperationalError

    _run, claims = _running(1)
    leases.hold(claims[0])

    def deadlock() -> None:
        raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")

    monkeypatch.setattr(leases, "_renew", deadlock)
    leases.check(claims[0])  # no exception: the step keeps running

    def unreachable() -> None:
        raise OperationalError(2002, "Can't connect to server")

    monkeypatch.setattr(leases, "_renew", unreachable)
    leases.check(claims[0])  # within the lease: still running
    settings.CANAL_TASK_LEASE_SECONDS = 0
    with pytest.raises(OperationalError):
        leases.check(claims[0])


def test_an_attempt_that_ended_in_an_internal_error_keeps_its_command_line(leases: Any) -> None:
    _run, (claim,) = _running(1)
    local_steps._save_argv(claim, ["sh", "-c", "echo broken"])
    leases.hold(claim)
    leases.release(claim)
    # task_execute's outcome for an unexpected exception knows no command line.
    outcome = local_steps.StepOutcome(outputs=None, error="internal error running the step: boom")
    local_steps.record_outcome(claim.task_id, claim.token, claim.attempt, outcome, run_id=claim.run_id)
    task = Task.objects.get(pk=claim.task_id)
    assert task.state == RuntimeState.FAILED
    assert task.attempts.get(number=claim.attempt).command == ["sh", "-c", "echo broken"]
