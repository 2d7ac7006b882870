"""KFP semantics that kfp.local gets wrong, checked end to end with pipelines compiled by
the real kfp SDK and run by a real worker."""

from __future__ import annotations

import pytest

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.models import Task
from apps.runs.services import run_create
from tests.live import wait_for_run
from tests.runs import kfp_pipelines as kp

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _run(pipeline, **params):  # type: ignore[no-untyped-def]
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name=pipeline.name,
        pipeline_spec=kp.compile_to_ir(pipeline),
        parameters=params,
    )
    return wait_for_run(run.pk, timeout=300)


def _outputs(run, name: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return {t.key: t for t in Task.objects.filter(run=run, name=name)}


def test_double_condition_takes_the_right_branch(worker) -> None:  # type: ignore[no-untyped-def]
    spec = kp.compile_to_ir(kp.double_condition)
    assert "double(" in str(spec), "kfp should compile this comparison with CEL double()"
    above = _run(kp.double_condition, x=3)
    below = _run(kp.double_condition, x=2)
    assert above.state == below.state == RuntimeState.SUCCEEDED
    ran_above = [
        t.outputs["parameters"]["Output"]
        for t in Task.objects.filter(run=above, name__startswith="report", state=RuntimeState.SUCCEEDED)
    ]
    ran_below = [
        t.outputs["parameters"]["Output"]
        for t in Task.objects.filter(run=below, name__startswith="report", state=RuntimeState.SUCCEEDED)
    ]
    assert ran_above == ["above"]
    assert ran_below == ["below"]


def test_collected_ints_stay_ints(worker) -> None:  # type: ignore[no-untyped-def]
    run = _run(kp.collected_ints)
    assert run.state == RuntimeState.SUCCEEDED, run.error
    check = Task.objects.get(run=run, name="check-ints")
    assert check.inputs["parameters"]["values"] == [1, 4, 9]
    assert check.outputs["parameters"]["Output"] == "int:14"


def test_retries_follow_the_backoff(worker, step_shared) -> None:  # type: ignore[no-untyped-def]
    run = _run(kp.retry_backoff, counter_path=str(step_shared / "counter"))
    assert run.state == RuntimeState.SUCCEEDED, run.error
    task = Task.objects.get(run=run, name="flaky")
    attempts = list(task.attempts.order_by("number"))
    assert [a.state for a in attempts] == [RuntimeState.FAILED, RuntimeState.FAILED, RuntimeState.SUCCEEDED]
    assert task.outputs["parameters"]["Output"] == "succeeded on attempt 3"
    # Backoff 1s then 2s (factor 2): each retry starts no earlier than that after the failure.
    gap_1 = (attempts[1].started_at - attempts[0].finished_at).total_seconds()
    gap_2 = (attempts[2].started_at - attempts[1].finished_at).total_seconds()
    assert gap_1 >= 0.9
    assert gap_2 >= 1.9
    assert "retrying in 1s" in str(task.state_history)
    assert "retrying in 2s" in str(task.state_history)


def test_exit_handler_sees_the_real_final_state(worker) -> None:  # type: ignore[no-untyped-def]
    run = _run(kp.exit_status)
    assert run.state == RuntimeState.FAILED
    exit_task = Task.objects.get(run=run, name="record-status")
    assert exit_task.state == RuntimeState.SUCCEEDED
    state, producer, _code = exit_task.outputs["parameters"]["Output"].split("|")
    assert state == "FAILED"
    assert producer == "exit-handler-1"


def test_cached_rerun_reuses_outputs_and_says_so(worker) -> None:  # type: ignore[no-untyped-def]
    first = _run(kp.cached, x=7)
    second = _run(kp.cached, x=7)
    other = _run(kp.cached, x=8)
    assert first.state == second.state == other.state == RuntimeState.SUCCEEDED
    original = Task.objects.get(run=first, name="slow-square")
    reused = Task.objects.get(run=second, name="slow-square")
    fresh = Task.objects.get(run=other, name="slow-square")
    assert original.cached_from_id is None
    assert reused.cached_from_id == original.pk
    assert reused.outputs == original.outputs == {"parameters": {"Output": 49}}
    assert f"cached from run {first.pk}" in reused.cache_status
    assert reused.attempts.count() == 0  # nothing ran
    assert fresh.cached_from_id is None
    assert fresh.outputs["parameters"]["Output"] == 64
