"""Retry backoff, and retrying a failed run so only what did not succeed runs again."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from apps.engine.keys import NodeKind, NodeState
from apps.engine.model import NodeRecord, RunContext, StepLaunch
from apps.engine.retry import plan_run_retry, retry_delay
from apps.engine.spec import RetryPolicy, parse_pipeline_spec
from tests.engine import compiled
from tests.engine.corpus import load_spec, minimal_ir
from tests.engine.harness import FakeRun, StepFailed


def test_retry_delay_backs_off_and_caps() -> None:
    policy = RetryPolicy(
        max_retry_count=4, backoff_duration=2.0, backoff_factor=3.0, backoff_max_duration=30.0
    )
    assert [retry_delay(policy, n) for n in range(1, 6)] == [2.0, 6.0, 18.0, 30.0, None]
    assert retry_delay(policy, 0) is None
    assert retry_delay(None, 1) is None


def test_retry_policy_defaults_from_the_ir() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["a"]["retryPolicy"] = {"maxRetryCount": 2, "backoffDuration": "1.5s"}
    task = parse_pipeline_spec(ir).root.dag.tasks["a"]  # type: ignore[union-attr]
    assert task.retry == RetryPolicy(2, 1.5, 2.0, 3600.0)
    assert [retry_delay(task.retry, n) for n in (1, 2, 3)] == [1.5, 3.0, None]
    corpus = load_spec("local_execution/local_execution_pipeline_with_retry.yaml")
    (retried,) = [t for t in corpus.root.dag.tasks.values() if t.retry]  # type: ignore[union-attr]
    assert retried.retry is not None
    assert [retry_delay(retried.retry, n) for n in (1, 2, 3, 4)] == [0.0, 0.0, 0.0, None]


def _apply_retry(run: FakeRun) -> None:
    change = plan_run_retry(run.records.values())
    for key in change.delete:
        del run.records[key]
    for key in change.reopen:
        run.records[key] = dataclasses.replace(
            run.records[key],
            state=NodeState.RUNNING,
            error=None,
            outputs=dataclasses.replace(run.records[key].outputs, parameters={}, artifacts={}),
        )
    run.outcome = None


def test_retrying_a_failed_run_reruns_only_the_failed_part() -> None:
    spec = parse_pipeline_spec(minimal_ir())
    attempts: list[str] = []

    def flaky(launch: StepLaunch) -> None:
        attempts.append(launch.key)
        if len(attempts) == 1:
            raise StepFailed("transient")

    run = FakeRun(spec, RunContext(run_id="r"), {"a": lambda launch: {"out": 4}, "b": flaky})
    assert run.run().state == NodeState.FAILED
    change = plan_run_retry(run.records.values())
    assert change.delete == ["root/b"]
    assert change.reopen == ["root"]
    _apply_retry(run)
    assert run.run().state == NodeState.SUCCEEDED
    assert run.launched_names() == ["a", "b", "b"]
    assert run.records["root/b"].inputs.parameters == {"y": 4}


def test_retry_inside_a_loop_keeps_succeeded_iterations() -> None:
    spec = compiled.collected_ints()
    failures = {"remaining": 1}

    def double(launch: StepLaunch) -> dict[str, Any]:
        if launch.input_parameters["x"] == 2 and failures["remaining"]:
            failures["remaining"] -= 1
            raise StepFailed("boom")
        return {"Output": launch.input_parameters["x"] * 2}

    behaviours = {"double": double, "total": lambda launch: {"Output": sum(launch.input_parameters["xs"])}}
    run = FakeRun(spec, RunContext(run_id="r", parameters={"numbers": [1, 2, 3]}), behaviours)
    outcome = run.run()
    assert outcome.state == NodeState.FAILED
    assert run.state("root/total") == NodeState.SKIPPED
    change = plan_run_retry(run.records.values())
    assert set(change.reopen) == {"root", "root/for-loop-1"}
    assert set(change.delete) == {"root/for-loop-1#1", "root/for-loop-1#1/double", "root/total"}
    _apply_retry(run)
    outcome = run.run()
    assert outcome.state == NodeState.SUCCEEDED
    assert outcome.outputs.parameters == {"Output": 12}
    doubled = [launch.input_parameters["x"] for launch in run.launched if launch.task_name == "double"]
    assert doubled == [1, 2, 3, 2]  # only the failed iteration ran again


def test_retry_refuses_running_or_rootless_runs() -> None:
    with pytest.raises(ValueError, match="root"):
        plan_run_retry([])
    with pytest.raises(ValueError, match="finished"):
        plan_run_retry([NodeRecord("root", NodeKind.ROOT, NodeState.RUNNING)])
    assert plan_run_retry([NodeRecord("root", NodeKind.ROOT, NodeState.SUCCEEDED)]).delete == []
