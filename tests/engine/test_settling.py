"""One plan() settles: everything that follows from a change without I/O is decided in
the same call, whatever order the IR lists a DAG's tasks in (issue 9, §4)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from apps.engine.execution import ActiveExecution, EngineError
from apps.engine.keys import NodeState
from apps.engine.model import RunContext, StepLaunch
from apps.engine.spec import TaskSpec, parse_pipeline_spec
from tests.engine import compiled
from tests.engine.corpus import container_executor
from tests.engine.harness import FakeRun, StepFailed


def _ctx() -> RunContext:
    return RunContext(run_id="run-1", run_name="settle", pipeline_name="p")


def _fail(launch: StepLaunch) -> None:
    raise StepFailed("exit code 1")


def _dag(tasks: dict[str, list[str]], order: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A DAG of container tasks ``name -> dependentTasks``, listed in ``order``."""
    return {
        "tasks": {
            name: {
                "componentRef": {"name": "comp-step"},
                "taskInfo": {"name": name},
                **({"dependentTasks": tasks[name]} if tasks[name] else {}),
            }
            for name in (order or tuple(tasks))
        }
    }


def _ir(root_dag: dict[str, Any], **components: Any) -> dict[str, Any]:
    return {
        "pipelineInfo": {"name": "settle"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.6",
        "components": {"comp-step": {"executorLabel": "exec-step"}, **components},
        "deploymentSpec": {"executors": {"exec-step": container_executor()}},
        "root": {"dag": root_dag},
    }


DIAMOND = {"a": [], "b": ["a"], "c": ["a", "b"], "d": ["a", "c"]}


def _assert_failed_in_one_plan(run: FakeRun, failing: str, dependents: list[str]) -> None:
    first = run.plan()
    assert [c.key for c in first.creates] == ["root", f"root/{failing}"]
    run.execute(f"root/{failing}")
    assert run.state(f"root/{failing}") == NodeState.FAILED
    # The one plan that follows the failure ends the run.
    settled = run.plan()
    assert settled.run_outcome is not None
    assert settled.run_outcome.state == NodeState.FAILED
    assert settled.run_outcome.error == f"task '{failing}' failed: exit code 1"
    assert settled.launches == []
    # The reason names the first upstream (in dependentTasks order) that did not succeed.
    reasons = {f"upstream '{failing}' failed"} | {f"upstream '{n}' was skipped" for n in dependents}
    for name in dependents:
        # As KFP does: a task whose upstream failed is skipped, never run.
        assert run.state(f"root/{name}") == NodeState.SKIPPED
        assert run.reasons[f"root/{name}"] in reasons
    assert run.state("root") == NodeState.FAILED
    assert [launch.task_name for launch in run.launched] == [failing]
    again = ActiveExecution(run.spec, run.ctx, list(run.records.values())).plan()
    assert again.is_empty()


@pytest.mark.parametrize("order", list(itertools.permutations(DIAMOND)), ids="".join)
def test_a_failure_skips_the_diamond_in_one_plan_in_any_task_order(order: tuple[str, ...]) -> None:
    spec = parse_pipeline_spec(_ir(_dag(DIAMOND, order)))
    assert tuple(spec.root.dag.tasks) == order  # type: ignore[union-attr]
    run = FakeRun(spec, _ctx(), {"a": _fail})
    _assert_failed_in_one_plan(run, "a", ["b", "c", "d"])


@pytest.mark.parametrize("reverse", [False, True], ids=["as-compiled", "reversed"])
def test_the_kfp_compiled_diamond_fails_in_one_plan(reverse: bool) -> None:
    ir = compiled.skip_diamond_ir()
    tasks = ir["root"]["dag"]["tasks"]
    assert list(tasks) == ["echo", "echo-2", "echo-3", "fail"]  # the SDK sorts tasks by name
    if reverse:
        ir["root"]["dag"]["tasks"] = dict(reversed(tasks.items()))
    spec = parse_pipeline_spec(ir)
    run = FakeRun(spec, _ctx(), {"fail": _fail})
    _assert_failed_in_one_plan(run, "fail", ["echo", "echo-2", "echo-3"])


def test_a_reversed_chain_settles_in_one_plan_looking_at_each_task_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A long chain written last-task-first: the worst order for a single in-IR-order pass.
    n = 400
    chain = {f"t{i}": ([f"t{i - 1}"] if i else []) for i in range(n)}
    spec = parse_pipeline_spec(_ir(_dag(chain, tuple(reversed(chain)))))
    run = FakeRun(spec, _ctx(), {"t0": _fail})
    run.check_incremental = False  # count the tries of one execution only
    run.plan()
    run.execute("root/t0")

    tried: list[str] = []
    original = ActiveExecution._try_start

    def counting(self: ActiveExecution, parent: Any, task: TaskSpec) -> Any:
        tried.append(task.name)
        return original(self, parent, task)

    monkeypatch.setattr(ActiveExecution, "_try_start", counting)
    settled = run.plan()
    assert settled.run_outcome is not None
    assert settled.run_outcome.state == NodeState.FAILED
    assert all(run.state(f"root/t{i}") == NodeState.SKIPPED for i in range(1, n))
    # Linear, not quadratic: every waiting task is examined exactly once.
    assert sorted(tried) == sorted(f"t{i}" for i in range(1, n))


def test_a_failure_inside_a_sub_dag_reaches_the_run_in_one_plan() -> None:
    # Both DAGs list their tasks dependents-first. The inner failure skips the inner
    # dependent, fails the sub-DAG, skips the outer dependent and fails the run: one plan.
    inner = _dag({"boom": [], "after-boom": ["boom"]}, ("after-boom", "boom"))
    outer = _dag({"group": [], "later": ["group"], "last": ["later", "group"]}, ("last", "later", "group"))
    outer["tasks"]["group"]["componentRef"] = {"name": "comp-inner"}
    spec = parse_pipeline_spec(_ir(outer, **{"comp-inner": {"dag": inner}}))
    run = FakeRun(spec, _ctx(), {"boom": _fail})
    first = run.plan()
    assert [c.key for c in first.creates] == ["root", "root/group", "root/group/boom"]
    run.execute("root/group/boom")
    settled = run.plan()
    assert settled.run_outcome is not None
    assert settled.run_outcome.state == NodeState.FAILED
    assert run.states() == {
        "root": NodeState.FAILED,
        "root/group": NodeState.FAILED,
        "root/group/boom": NodeState.FAILED,
        "root/group/after-boom": NodeState.SKIPPED,
        "root/later": NodeState.SKIPPED,
        "root/last": NodeState.SKIPPED,
    }


def test_execution_order_puts_upstream_first_and_keeps_ir_order_otherwise() -> None:
    spec = parse_pipeline_spec(_ir(_dag(DIAMOND | {"x": [], "y": ["d"]}, ("x", "d", "y", "c", "a", "b"))))
    order = [t.name for t in spec.root.dag.execution_order]  # type: ignore[union-attr]
    assert order == ["x", "a", "b", "c", "d", "y"]


@pytest.mark.timeout(60)  # without the budget this test would spin, not fail
def test_a_plan_that_never_settles_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate a bug that re-queues a group forever: the budget stops it with a clear error.
    spec = parse_pipeline_spec(_ir(_dag(DIAMOND)))
    monkeypatch.setattr(ActiveExecution, "_advance_dag", lambda self, node: self._enqueue(node))
    with pytest.raises(EngineError, match="did not settle"):
        ActiveExecution(spec, _ctx(), []).plan()


def test_a_sequential_loop_whose_iterations_finish_at_once_settles_in_one_plan() -> None:
    # parallelism=1: each iteration is created only when the previous one finished. Here
    # every iteration's body is skipped at once, so the loop, and the run, end in the
    # first plan, within the budget (an iteration's finish is what re-queues the loop).
    count = 60
    spec = compiled.sequential_loop_of_skips(count)
    run = FakeRun(spec, _ctx())
    plan = run.plan()
    assert plan.run_outcome is not None
    assert plan.run_outcome.state == NodeState.SUCCEEDED
    iterations = [k for k, r in run.records.items() if r.kind == "ITERATION"]
    assert len(iterations) == count
    assert run.launched == []
    skipped = [k for k, r in run.records.items() if r.state == NodeState.SKIPPED]
    assert len(skipped) == count  # the If group of each iteration
