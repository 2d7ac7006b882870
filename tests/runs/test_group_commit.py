"""Steps of a worker that finish together are recorded in one transaction (issue 12, item 2).

Real threads, each with its own database connection, hand their finished attempts to
the worker's committer (``local_steps.record_outcome``), as a worker's threads do. The
first becomes the leader; to make the batches deterministic, its first transaction
waits until the other threads have handed theirs in.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.models import Namespace
from apps.core.services import namespace_ensure
from apps.engine.model import NodeIO
from apps.experiments.models import Experiment
from apps.runs.models import Run, Task
from apps.runs.services import local_plan, local_steps, records, run_advance, run_create
from apps.runs.services.local_steps import StepOutcome
from tests.engine.compiled import fan_out_ir

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = 6


def _claimed_fan_out() -> tuple[Run, list[Any]]:
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="fan",
        pipeline_spec=fan_out_ir(),
        parameters={"numbers": list(range(STEPS))},
    )
    ready = run_advance(run_id=run.pk)
    assert len(ready) == STEPS
    # As task_execute claims them: a queue message carries the ids as text.
    claims = [local_steps._claim(str(step)) for step in ready]
    return run, claims


def _finished(claims: list[Any], output: Any = lambda index: 2) -> list[Any]:
    """The group commit's work for these claimed steps, each ended with ``output(index)``."""
    return [
        local_steps._Work(
            task_id=claim.task_id,
            token=claim.token,
            attempt=claim.attempt,
            outcome=StepOutcome(outputs=NodeIO({"Output": output(index)}), error=""),
            run_id=claim.run_id,
        )
        for index, claim in enumerate(claims)
    ]


def _finish_together(claims: list[Any], monkeypatch: pytest.MonkeyPatch, fail: Any = None) -> dict[Any, Any]:
    """Each claim finishes in its own thread; returns task id -> ready ids or exception."""
    batches: list[list[Any]] = []
    real = local_steps._record_together

    def record(batch: list[Any], *args: Any, **kwargs: Any) -> None:
        if not batches:  # the leader's first batch waits for the others to queue up
            deadline = time.monotonic() + 30
            while len(local_steps._committer._pending) < len(claims) - len(batch):
                assert time.monotonic() < deadline, "the other threads never handed their attempts in"
                time.sleep(0.005)
        batches.append([item.task_id for item in batch])
        real(batch, *args, **kwargs)

    monkeypatch.setattr(local_steps, "_record_together", record)
    real_finish = local_steps.finish_attempt

    def finish(run: Run, task: Task, *args: Any) -> list[Any]:
        if task.pk == fail:
            raise ValueError(f"cannot record step {task.key}")
        return real_finish(run, task, *args)

    monkeypatch.setattr(local_steps, "finish_attempt", finish)
    results: dict[Any, Any] = {}
    start = threading.Barrier(len(claims))

    def work(claim: Any) -> None:
        try:
            x = Task.objects.get(pk=claim.task_id).inputs["parameters"]["x"]
            start.wait()
            outcome = StepOutcome(outputs=NodeIO({"Output": 2 * x}), error="")
            ready = local_steps.record_outcome(
                claim.task_id, claim.token, claim.attempt, outcome, run_id=claim.run_id
            )
            results[claim.task_id] = ready
            if ready:
                # The step handed to this thread was claimed in the same transaction:
                # task_execute takes it without going to the database again.
                with CaptureQueriesContext(connection) as queries:
                    results[("claim", claim.task_id)] = local_steps._claim(ready[0])
                results[("queries", claim.task_id)] = len(queries.captured_queries)
        except Exception as exc:  # handed back to the test
            results[claim.task_id] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(claim,)) for claim in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    results["batches"] = batches
    return results


@pytest.mark.parametrize("max_led", [1, 2])
def test_steps_finishing_together_are_recorded_in_one_transaction(
    monkeypatch: pytest.MonkeyPatch, max_led: int
) -> None:
    monkeypatch.setattr(local_steps._Committer, "MAX_LED", max_led)
    records.forget_all()
    run, claims = _claimed_fan_out()
    revision = Run.objects.get(pk=run.pk).revision
    results = _finish_together(claims, monkeypatch)
    batches = results.pop("batches")
    # The leader's own attempt (and any that arrived with it), then everything that
    # queued meanwhile, together (with MAX_LED=1 the leader hands that second batch to a
    # waiting thread).
    assert len(batches) == 2
    assert sorted(step for batch in batches for step in batch) == sorted(c.task_id for c in claims)
    assert all(not isinstance(value, Exception) for value in results.values()), results
    # The fan-in became ready in the second batch: exactly one thread got it to run.
    handed = [(owner, step) for owner, ready in results.items() if isinstance(ready, list) for step in ready]
    assert len(handed) == 1
    owner, handed_id = handed[0]
    total = Task.objects.get(pk=handed_id)
    assert total.key == "root/total"
    # Claimed in that same transaction, for the thread it was handed to.
    assert total.state == RuntimeState.RUNNING
    assert total.attempts.count() == 1
    claimed = results[("claim", owner)]
    assert (claimed.task_id, claimed.token, claimed.attempt) == (total.pk, total.lease_owner, 1)
    assert results[("queries", owner)] == 0
    assert sorted(total.inputs["parameters"]["xs"]) == [2 * x for x in range(STEPS)]
    # One revision per batch for its records, one for the plan written, one for the
    # claim of the handed step: not one per attempt.
    assert revision < Run.objects.get(pk=run.pk).revision <= revision + 3 * len(batches)
    assert (
        Task.objects.filter(run=run, key__contains="#", kind="CONTAINER", state="SUCCEEDED").count() == STEPS
    )


def test_an_attempt_that_cannot_be_recorded_fails_only_its_own_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records.forget_all()
    _run, claims = _claimed_fan_out()
    bad = claims[3].task_id
    results = _finish_together(claims, monkeypatch, fail=bad)
    batches = results.pop("batches")
    # The batch holding it failed as a whole, then each of its attempts was recorded alone.
    failed = next(i for i, batch in enumerate(batches) if bad in batch)
    if len(batches[failed]) > 1:
        assert [len(b) for b in batches[failed + 1 : failed + 1 + len(batches[failed])]] == [1] * len(
            batches[failed]
        )
    assert isinstance(results[bad], ValueError)
    assert "cannot record step" in str(results[bad])
    states = dict(Task.objects.filter(pk__in=[c.task_id for c in claims]).values_list("id", "state"))
    assert states.pop(bad) == RuntimeState.RUNNING  # nothing of it was written
    assert set(states.values()) == {RuntimeState.SUCCEEDED}
    assert all(isinstance(results[step], list) for step in states)
    handed = [step for owner, ready in results.items() if isinstance(ready, list) for step in ready]
    assert [Task.objects.get(pk=step).state for step in handed] == []  # the fan-in waits for the failed step


def test_a_message_for_a_step_that_no_longer_exists_is_dropped() -> None:
    """A queued message can outlive its step (its run was deleted): claiming it finds
    nothing to run and fails nothing, alone or beside a real claim in one group commit."""
    run, claims = _claimed_fan_out()
    gone = uuid.uuid4()
    assert local_steps._claim(str(gone)) is None
    assert local_steps.task_execute(task_id=gone) == []
    lone = local_steps._Work(task_id=gone)
    real = local_steps._Work(task_id=uuid.UUID(str(claims[0].task_id)))
    local_steps._record_batch([lone, real])
    assert lone.error is None and lone.claimed is None
    assert real.error is None  # already claimed above: nothing more to claim
    assert Run.objects.get(pk=run.pk).state == RuntimeState.RUNNING


def test_a_batch_writes_each_kind_of_row_once_and_its_run_row_last() -> None:
    """A batch's statements do not grow with its size: each kind of row it writes (the
    attempts' ends, the steps' outcomes, the finished iterations, the claims) is one
    UPDATE for all its rows, and the run's row (revision, state) one UPDATE at the end."""
    records.forget_all()
    run, claims = _claimed_fan_out()
    batch = _finished(claims, lambda index: 2 * index)
    with CaptureQueriesContext(connection) as queries:
        local_steps._record_batch(batch)
    assert [item.error for item in batch] == [None] * STEPS
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    tables = [sql.split()[1].strip('"`') for sql in updates]
    # Outcomes, then iterations, then the fan-in's claim; the run's row last.
    assert tables == ["runs_taskattempt", "runs_task", "runs_task", "runs_task", "runs_run"], updates
    handed = [step for item in batch for step in item.ready]
    assert [Task.objects.get(pk=step).key for step in handed] == ["root/total"]
    # The run's row holds the newest revision any of its rows was stamped with, so a
    # worker that reads the run afresh reads every change.
    stored = Run.objects.get(pk=run.pk)
    newest = max(Task.objects.filter(run=run).values_list("revision", flat=True))
    assert stored.revision == newest
    assert stored.state == RuntimeState.RUNNING
    assert set(Task.objects.filter(pk__in=[c.task_id for c in claims]).values_list("state", flat=True)) == {
        RuntimeState.SUCCEEDED
    }
    records.forget_all()  # a fresh engine, from the rows: nothing left to plan
    assert run_advance(run_id=run.pk) == []


def test_two_messages_for_one_step_in_one_batch_claim_it_once(caplog: pytest.LogCaptureFixture) -> None:
    """The reaper queues a step again when its message seems lost; both messages may
    reach one worker's threads at once. The batch claims the step once (the other
    thread gets nothing) instead of failing and being recorded step by step."""
    records.forget_all()
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="fan",
        pipeline_spec=fan_out_ir(),
        parameters={"numbers": list(range(3))},
    )
    first, second, _third = run_advance(run_id=run.pk)
    batch = [local_steps._Work(task_id=step, run_id=run.pk) for step in (first, first, second)]
    with caplog.at_level("WARNING", logger="canal"), CaptureQueriesContext(connection) as queries:
        local_steps._record_batch(batch)
    assert [type(item.claimed).__name__ for item in batch] == ["_Claim", "NoneType", "_Claim"]
    assert [item.error for item in batch] == [None, None, None]
    assert "recording each alone" not in caplog.text
    assert sum(q["sql"].startswith("COMMIT") or q["sql"] == "COMMIT" for q in queries.captured_queries) <= 1
    assert Task.objects.get(pk=first).attempts.count() == 1


def test_a_runs_namespace_is_read_once_per_process_and_each_run_keeps_its_own() -> None:
    """The group commit reads a run's namespace (its steps' tenant directory) the first
    time it locks the run, not in every batch; runs of different namespaces in one batch
    each get their own, and a namespace made after another was deleted, under the same
    id, is read afresh (the cache is by run, never by namespace id)."""
    records.forget_all()
    local_steps._run_namespaces.clear()
    runs, steps = [], []
    for name in ("team-a", "team-b"):
        run = run_create(
            namespace=namespace_ensure(actor=OPERATOR, name=name),
            actor=OPERATOR,
            display_name=name,
            pipeline_spec=fan_out_ir(),
            parameters={"numbers": [1, 2]},
        )
        runs.append(run)
        steps.append(run_advance(run_id=run.pk))

    def batch_of(index: int) -> list[Any]:
        return [
            local_steps._Work(task_id=step[index], run_id=run.pk)
            for run, step in zip(runs, steps, strict=True)
        ]

    def namespace_reads(queries: CaptureQueriesContext) -> int:
        return sum("core_namespace" in q["sql"] for q in queries.captured_queries)

    with CaptureQueriesContext(connection) as first:
        local_steps._record_batch(batch := batch_of(0))
    assert namespace_reads(first) == 1  # both runs' namespaces, in one statement
    assert [item.claimed.namespace for item in batch] == ["team-a", "team-b"]
    with CaptureQueriesContext(connection) as second:
        local_steps._record_batch(batch := batch_of(1))
    assert namespace_reads(second) == 0
    assert [item.claimed.namespace for item in batch] == ["team-a", "team-b"]

    # Another run whose namespace has the id a deleted namespace had: read, not the old name.
    local_steps._run_namespaces.clear()
    old = namespace_ensure(actor=OPERATOR, name="gone")
    stale = run_create(
        namespace=old,
        actor=OPERATOR,
        display_name="x",
        pipeline_spec=fan_out_ir(),
        parameters={"numbers": [1]},
    )
    local_steps._record_batch([local_steps._Work(task_id=run_advance(run_id=stale.pk)[0], run_id=stale.pk)])
    old_id = old.pk
    Run.objects.filter(pk=stale.pk).delete()
    Experiment.objects.filter(namespace=old).delete()
    old.delete()
    reused = Namespace.objects.create(pk=old_id, name="new-team")
    fresh = run_create(
        namespace=reused,
        actor=OPERATOR,
        display_name="y",
        pipeline_spec=fan_out_ir(),
        parameters={"numbers": [1]},
    )
    local_steps._record_batch(
        batch := [local_steps._Work(task_id=run_advance(run_id=fresh.pk)[0], run_id=fresh.pk)]
    )
    assert batch[0].claimed.namespace == "new-team"


def test_a_plan_that_fails_in_a_batch_fails_its_run_alone_with_no_savepoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch plans each run without a savepoint (two statements less on MariaDB). A plan
    that fails after writing rolls the whole batch back, and the batch is done once more
    with a savepoint around each plan: the failing run fails with the reason, its step's
    outcome is kept, nothing its plan wrote stays, and the other run goes on."""
    records.forget_all()
    runs = [
        run_create(
            namespace=namespace_ensure(actor=OPERATOR),
            actor=OPERATOR,
            display_name=name,
            pipeline_spec=fan_out_ir(),
            parameters={"numbers": [1, 2]},
        )
        for name in ("good", "bad")
    ]
    good, bad = runs
    claims = [local_steps._claim(str(run_advance(run_id=run.pk)[0])) for run in runs]
    real_apply = local_plan._apply
    applied: list[Any] = []

    def apply(run: Run, *args: Any) -> Any:
        done = real_apply(run, *args)
        applied.append(run.pk)
        if run.pk == bad.pk:  # after its rows were written
            raise UnicodeEncodeError("utf-8", "x\ud800", 1, 2, "surrogates not allowed")
        return done

    monkeypatch.setattr(local_plan, "_apply", apply)
    batch = _finished(claims)
    with CaptureQueriesContext(connection) as queries:
        local_steps._record_batch(batch)
    assert [item.error for item in batch] == [None, None]
    # Two tries: the first without savepoints (rolled back), then one savepoint per plan.
    savepoints = [q["sql"] for q in queries.captured_queries if q["sql"].upper().startswith("SAVEPOINT")]
    assert len(savepoints) == 2, savepoints
    assert applied.count(bad.pk) == 2
    assert sum(q["sql"].upper().startswith("COMMIT") for q in queries.captured_queries) <= 1

    bad.refresh_from_db()
    assert bad.state == RuntimeState.FAILED
    assert bad.error.startswith("internal error while planning this run: UnicodeEncodeError")
    done = Task.objects.get(pk=claims[1].task_id)
    assert done.state == RuntimeState.SUCCEEDED  # its outcome was recorded
    other = Task.objects.filter(run=bad, kind="CONTAINER").exclude(pk=done.pk).get()
    assert other.state == RuntimeState.CANCELED  # queued, never started: canceled with the run
    # The failed plan left nothing: no group of the run finished, they failed with it.
    groups = Task.objects.filter(run=bad).exclude(kind="CONTAINER")
    assert set(groups.values_list("state", flat=True)) == {RuntimeState.FAILED}

    good.refresh_from_db()
    assert good.state == RuntimeState.RUNNING
    iteration = Task.objects.get(pk=claims[0].task_id).parent
    assert iteration is not None and iteration.state == RuntimeState.SUCCEEDED


def test_a_batch_whose_plans_hold_sends_no_savepoint() -> None:
    records.forget_all()
    _run, claims = _claimed_fan_out()
    batch = _finished(claims)
    with CaptureQueriesContext(connection) as queries:
        local_steps._record_batch(batch)
    assert [item.error for item in batch] == [None] * STEPS
    assert not [q["sql"] for q in queries.captured_queries if "SAVEPOINT" in q["sql"].upper()]
