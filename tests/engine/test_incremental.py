"""An execution kept for the life of a run (issue 12, item 1): fed events, it plans what a
rebuild from every record plans, and the cost of one event does not grow with the run.

Equivalence is also checked by every FakeRun scenario (the harness feeds a kept
execution and compares its plans with rebuilt ones at each step); the tests here add
orders of completion the scenarios do not use, and count the engine's operations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from apps.engine.execution import ActiveExecution, EngineError, EngineOperations
from apps.engine.keys import NodeKind, NodeState
from apps.engine.model import NodeIO, NodeRecord, Plan, RunContext
from apps.engine.spec import PipelineSpec, parse_pipeline_spec
from tests.engine import compiled
from tests.engine.corpus import dummy_inputs, load_documents, minimal_ir, valid_files
from tests.engine.harness import FakeRun, dummy_outputs


def _corpus_run(path: Path) -> FakeRun:
    ir, platform = load_documents(path)
    spec = parse_pipeline_spec(ir, platform)
    params = dummy_inputs(spec)
    return FakeRun(spec, RunContext(run_id="run-1", parameters=params, pipeline_name=spec.name))


# -- equivalence -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", valid_files(), ids=lambda p: str(p.relative_to(p.parents[1])))
def test_corpus_one_step_at_a_time_last_first(path: Path) -> None:
    # The harness compares the kept execution's plan with a rebuild's after every step;
    # finishing the newest step first reaches states the batch corpus run does not.
    run = _corpus_run(path)
    outcome = run.run(pick=lambda keys: [keys[-1]])
    assert outcome.state in (NodeState.SUCCEEDED, NodeState.FAILED)
    assert run.kept is not None
    assert run.non_terminal() == []


@pytest.mark.parametrize("path", valid_files()[::10], ids=lambda p: str(p.relative_to(p.parents[1])))
def test_corpus_canceled_midway(path: Path) -> None:
    run = _corpus_run(path)
    run.plan()
    if run.pending:
        run.execute(next(iter(run.pending)))
        run.plan()
    run.ctx = dataclasses.replace(run.ctx, canceling=True)
    for _ in range(100):
        if run.outcome is not None:
            break
        run.plan()
        for key in list(run.pending):
            run.execute(key)
    assert run.outcome is not None
    assert run.outcome.state in (NodeState.CANCELED, NodeState.SUCCEEDED, NodeState.FAILED)


def test_plan_is_kept_until_an_event_and_advance_never_repeats() -> None:
    spec = parse_pipeline_spec(minimal_ir())
    engine = ActiveExecution(spec, RunContext(run_id="r"), [])
    first = engine.plan()
    assert engine.plan() is first
    assert [c.key for c in first.creates] == ["root", "root/a"]
    assert engine.advance().is_empty()  # the first plan was applied: nothing new
    engine.apply(NodeRecord("root/a", NodeKind.CONTAINER, NodeState.RUNNING))
    assert engine.plan().is_empty()
    engine.apply(NodeRecord("root/a", NodeKind.CONTAINER, NodeState.SUCCEEDED, outputs=NodeIO({"out": 3})))
    second = engine.plan()
    assert [c.key for c in second.creates] == ["root/b"]
    assert second.launches[0].input_parameters == {"y": 3}
    # The same record again changes nothing.
    engine.apply(NodeRecord("root/a", NodeKind.CONTAINER, NodeState.SUCCEEDED, outputs=NodeIO({"out": 3})))
    assert engine.advance().is_empty()


def test_events_that_do_not_fit_are_reported() -> None:
    spec = parse_pipeline_spec(minimal_ir())
    engine = ActiveExecution(spec, RunContext(run_id="r"), [])
    engine.plan()
    with pytest.raises(EngineError, match="changed kind"):
        engine.apply(NodeRecord("root/a", NodeKind.DAG, NodeState.RUNNING))
    with pytest.raises(EngineError, match="unknown kind or state"):
        engine.apply(NodeRecord("root/a", NodeKind.CONTAINER, "BOGUS"))
    with pytest.raises(EngineError, match="new root"):
        ActiveExecution(spec, RunContext(run_id="r"), []).apply(NodeRecord("root", NodeKind.ROOT, "RUNNING"))
    with pytest.raises(EngineError, match="does not correspond"):
        engine.apply(NodeRecord("root/zzz", NodeKind.CONTAINER, NodeState.PENDING))


def test_a_record_created_elsewhere_is_taken_in() -> None:
    # Another writer created root/b (as a plan would have): the kept execution takes it in
    # and does not create it again.
    spec = parse_pipeline_spec(minimal_ir())
    engine = ActiveExecution(spec, RunContext(run_id="r"), [])
    engine.plan()
    engine.apply(NodeRecord("root/a", NodeKind.CONTAINER, NodeState.SUCCEEDED, outputs=NodeIO({"out": 3})))
    engine.apply(NodeRecord("root/b", NodeKind.CONTAINER, NodeState.SUCCEEDED))
    plan = engine.advance()
    assert not plan.creates
    assert plan.run_outcome is not None
    assert plan.run_outcome.state == NodeState.SUCCEEDED


# -- cost per event --------------------------------------------------------------------------


class _Driver:
    """A kept execution, the records its plans created, and steps finished one by one."""

    def __init__(self, spec: PipelineSpec, parameters: dict[str, Any]) -> None:
        self.run = FakeRun(spec, RunContext(run_id="r", parameters=parameters))
        self.run.check_incremental = False
        self.engine = ActiveExecution(spec, self.run.ctx, [])
        self.run.apply(self.engine.advance())

    def finish(self, keys: Iterable[str]) -> tuple[Plan, EngineOperations]:
        """Succeed these pending steps, feed them, advance; what that cost the engine."""
        before = EngineOperations(self.engine.operations.visited, self.engine.operations.collected)
        for key in keys:
            launch = self.run.pending[key]
            self.run.succeed(key, NodeIO(dummy_outputs(launch).parameters))
            self.engine.apply(self.run.records[key])
        plan = self.engine.advance()
        self.run.apply(plan)
        after = self.engine.operations
        return plan, EngineOperations(after.visited - before.visited, after.collected - before.collected)


def _last_completion_of_fan_out(n: int) -> tuple[Plan, EngineOperations]:
    driver = _Driver(compiled.fan_out(), {"numbers": list(range(n))})
    steps = list(driver.run.pending)
    assert len(steps) == n
    driver.finish(steps[:-1])
    return driver.finish(steps[-1:])


def test_last_completion_of_a_5000_iteration_loop_costs_what_it_costs_in_a_50_one() -> None:
    small_plan, small = _last_completion_of_fan_out(50)
    big_plan, big = _last_completion_of_fan_out(5000)
    # The same decisions: the loop finishes and the step after it is created.
    assert [c.key for c in small_plan.completes] == ["root/for-loop-1#49", "root/for-loop-1"]
    assert [c.key for c in big_plan.completes] == ["root/for-loop-1#4999", "root/for-loop-1"]
    assert [c.key for c in big_plan.creates] == ["root/total"]
    assert big_plan.launches[0].input_parameters["xs"] == [1] * 5000
    # Outside the affected loop, the same work whatever the run's size; reading the
    # loop's iterations once to collect its outputs is the only part that grows.
    assert big.visited == small.visited
    assert small.visited < 30
    assert (small.collected, big.collected) == (50, 5000)


def test_a_completion_inside_a_5000_iteration_loop_costs_what_it_costs_in_a_50_one() -> None:
    costs = []
    for n in (50, 5000):
        driver = _Driver(compiled.fan_out(), {"numbers": list(range(n))})
        steps = list(driver.run.pending)
        driver.finish(steps[: n // 2])
        plan, cost = driver.finish([steps[n // 2]])
        # Its iteration finishes; the loop is still running.
        assert [c.key for c in plan.completes] == [f"root/for-loop-1#{n // 2}"]
        assert not plan.creates
        costs.append(cost)
    assert costs[0] == costs[1]
    assert costs[0].collected == 0


def test_a_completion_under_a_parallelism_limit_creates_the_next_iteration_at_constant_cost() -> None:
    costs = []
    for n in (20, 2000):
        driver = _Driver(compiled.fan_out(parallelism=2), {"numbers": list(range(n))})
        for _ in range(n // 2):
            driver.finish([next(iter(driver.run.pending))])
        plan, cost = driver.finish([next(iter(driver.run.pending))])
        assert [c.kind for c in plan.creates] == [NodeKind.ITERATION, NodeKind.CONTAINER]
        costs.append(cost)
    assert costs[0] == costs[1]


def _last_completion_of_nested(rows: int, cols: int) -> tuple[Plan, EngineOperations]:
    driver = _Driver(compiled.nested_fan_out(), {"rows": list(range(rows)), "cols": list(range(cols))})
    steps = list(driver.run.pending)
    assert len(steps) == rows * cols
    driver.finish(steps[:-1])
    return driver.finish(steps[-1:])


def test_last_completion_of_nested_loops_costs_the_same_at_5000_cells_as_at_50() -> None:
    small_plan, small = _last_completion_of_nested(5, 10)
    big_plan, big = _last_completion_of_nested(50, 100)
    # The inner iteration, the inner loop, its outer iteration and the outer loop finish;
    # "done" is created.
    assert [c.key for c in big_plan.creates] == ["root/done"]
    assert [c.key for c in big_plan.completes] == [
        "root/for-loop-1#49/for-loop-2#99",
        "root/for-loop-1#49/for-loop-2",
        "root/for-loop-1#49",
        "root/for-loop-1",
    ]
    assert len(small_plan.completes) == 4
    assert big.visited == small.visited
    # Collecting: the last inner loop's iterations, then the outer loop's.
    assert (small.collected, big.collected) == (10 + 5, 100 + 50)


def test_rebuilding_costs_what_the_records_cost_once() -> None:
    # A restart rebuilds from records: linear in them, once, then events are cheap again.
    driver = _Driver(compiled.fan_out(), {"numbers": list(range(500))})
    steps = list(driver.run.pending)
    driver.finish(steps[:-1])
    rebuilt = ActiveExecution(driver.run.spec, driver.run.ctx, list(driver.run.records.values()))
    assert rebuilt.advance().is_empty()
    assert rebuilt.operations.visited >= len(driver.run.records)
    launch = driver.run.pending[steps[-1]]
    driver.run.succeed(steps[-1], NodeIO(dummy_outputs(launch).parameters))
    before = rebuilt.operations.visited
    rebuilt.apply(driver.run.records[steps[-1]])
    plan = rebuilt.advance()
    assert [c.key for c in plan.creates] == ["root/total"]
    assert rebuilt.operations.visited - before < 30
