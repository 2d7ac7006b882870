"""The state machine driven through whole pipelines with a fake in-memory executor."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from apps.engine.execution import ActiveExecution, EngineError
from apps.engine.keys import NodeKind, NodeState
from apps.engine.model import ArtifactRef, NodeIO, NodeRecord, RunContext, StepLaunch
from apps.engine.spec import parse_pipeline_spec
from tests.engine import compiled
from tests.engine.corpus import dummy_inputs, load_documents, load_spec, minimal_ir, valid_files
from tests.engine.harness import FakeRun, StepFailed, StepResult


def ctx(**overrides: Any) -> RunContext:
    base = RunContext(run_id="run-1", run_name="my run", pipeline_name="p")
    return dataclasses.replace(base, **overrides)


def fail(message: str) -> Any:
    def behaviour(launch: StepLaunch) -> None:
        raise StepFailed(message)

    return behaviour


# -- every corpus pipeline runs to an outcome ------------------------------------------------


@pytest.mark.parametrize("path", valid_files(), ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_corpus_pipeline_runs_to_an_outcome(path: Path) -> None:
    ir, platform = load_documents(path)
    spec = parse_pipeline_spec(ir, platform)
    params = dummy_inputs(spec)
    run = FakeRun(spec, ctx(parameters=params, pipeline_name=spec.name))
    outcome = run.run(batch=True)
    # Dummy values may legitimately fail a typed condition; the engine itself must never
    # get stuck, and every node must end terminal.
    assert outcome.state in (NodeState.SUCCEEDED, NodeState.FAILED)
    assert run.non_terminal() == []
    assert run.records["root"].kind == NodeKind.ROOT
    for key, record in run.records.items():
        if record.state == NodeState.FAILED and record.kind in (NodeKind.CONTAINER, NodeKind.IMPORTER):
            assert record.error, key


# -- sequential chains ---------------------------------------------------------------------


def test_sequential_chain_passes_outputs_downstream_in_order() -> None:
    spec = load_spec("sequential_v2.yaml")
    seen: dict[str, Any] = {}

    def download(launch: StepLaunch) -> dict[str, Any]:
        return {"downloaded": f"data from {launch.input_parameters['url']}"}

    def echo(launch: StepLaunch) -> None:
        seen.update(launch.input_parameters)

    run = FakeRun(spec, ctx(parameters={"url": "gs://b/f.txt"}), {"download": download, "echo": echo})
    first = run.plan()
    # Only the root and the first step exist until the first step finishes.
    assert [c.key for c in first.creates] == ["root", "root/download"]
    assert first.creates[0].state == NodeState.RUNNING
    assert first.creates[1].state == NodeState.PENDING
    assert first.launches[0].input_parameters == {"url": "gs://b/f.txt"}
    outcome = run.run()
    assert outcome.state == NodeState.SUCCEEDED
    assert run.launched_names() == ["download", "echo"]
    assert seen == {"downloaded": "data from gs://b/f.txt"}


def test_root_parameters_are_validated() -> None:
    spec = parse_pipeline_spec(minimal_ir())
    plan = ActiveExecution(spec, ctx(parameters={"n": "three"}), []).plan()
    assert plan.run_outcome is not None
    assert plan.run_outcome.state == NodeState.FAILED
    assert "input 'n' expects a number" in (plan.run_outcome.error or "")
    plan = ActiveExecution(spec, ctx(parameters={"nope": 1}), []).plan()
    assert plan.run_outcome is not None
    assert "no parameter named 'nope'" in (plan.run_outcome.error or "")


def test_integer_defaults_reach_steps_as_ints() -> None:
    spec = load_spec("local_execution/pipeline_with_caching.yaml")
    plan = ActiveExecution(spec, ctx(), []).plan()
    (launch,) = plan.launches
    assert launch.input_parameters == {"x": 1}
    assert isinstance(launch.input_parameters["x"], int)


# -- fan-out / fan-in ----------------------------------------------------------------------


def test_fan_out_fan_in_collects_in_iteration_order() -> None:
    spec = load_spec("critical/collected_parameters.yaml")
    consumed: list[Any] = []

    def split(launch: StepLaunch) -> dict[str, Any]:
        return {"Output": launch.input_parameters["ids"].split(",")}

    def prepend(launch: StepLaunch) -> dict[str, Any]:
        return {"Output": "model-" + launch.input_parameters["content"]}

    behaviours = {
        "split-ids": split,
        "prepend-id": prepend,
        "consume-ids": lambda launch: consumed.append(launch.input_parameters["ids"]) or {"Output": "ok"},
        "consume-single-id": lambda launch: {"Output": "ok"},
    }
    run = FakeRun(spec, ctx(), behaviours)
    # Finish the iterations last-first: collection must still follow iteration order.
    outcome = run.run(pick=lambda keys: sorted(keys, reverse=True)[:1])
    assert outcome.state == NodeState.SUCCEEDED
    expected = ["model-s1", "model-s2", "model-s3"]
    assert consumed == [expected, expected]  # inside the sub-pipeline and at the root
    loop = run.records["root/collecting-parameters/for-loop-1"]
    assert loop.kind == NodeKind.LOOP
    assert loop.iteration_count == 3
    assert run.records["root/collecting-parameters/for-loop-1#2"].kind == NodeKind.ITERATION
    assert run.records["root/collecting-parameters/for-loop-1#2/prepend-id"].inputs.parameters == {
        "content": "s3"
    }


def test_collected_ints_stay_ints() -> None:
    spec = compiled.collected_ints()
    totals: list[Any] = []

    def double(launch: StepLaunch) -> dict[str, Any]:
        return {"Output": 2 * launch.input_parameters["x"]}

    def total(launch: StepLaunch) -> dict[str, Any]:
        totals.append(launch.input_parameters["xs"])
        return {"Output": sum(launch.input_parameters["xs"])}

    run = FakeRun(spec, ctx(parameters={"numbers": [1, 2, 3]}), {"double": double, "total": total})
    outcome = run.run(batch=True)
    assert outcome.state == NodeState.SUCCEEDED
    assert totals == [[2, 4, 6]]
    assert all(type(v) is int for v in totals[0])
    assert outcome.outputs.parameters == {"Output": 12}
    assert type(outcome.outputs.parameters["Output"]) is int
    # The executor input carries ints too (kfp.local turns them into floats).
    assert all(
        type(launch.input_parameters["x"]) is int for launch in run.launched if launch.task_name == "double"
    )


def test_empty_loop_succeeds_with_empty_collection() -> None:
    spec = compiled.collected_ints()
    totals: list[Any] = []
    run = FakeRun(
        spec,
        ctx(parameters={"numbers": []}),
        {"total": lambda launch: totals.append(launch.input_parameters["xs"]) or {"Output": 0}},
    )
    assert run.run().state == NodeState.SUCCEEDED
    assert totals == [[]]
    loop = run.records["root/for-loop-1"]
    assert loop.state == NodeState.SUCCEEDED
    assert loop.iteration_count == 0
    assert not [k for k in run.records if "#" in k]


def test_loop_over_a_non_list_fails_the_loop() -> None:
    ir = minimal_ir()
    ir["components"]["comp-a"]["outputDefinitions"]["parameters"]["out"]["parameterType"] = "STRING"
    ir["components"]["comp-for-loop-1"] = {
        "inputDefinitions": {
            "parameters": {"items": {"parameterType": "STRING"}, "item": {"parameterType": "STRING"}}
        },
        "dag": {
            "tasks": {
                "b": {
                    "componentRef": {"name": "comp-b"},
                    "inputs": {"parameters": {"y": {"runtimeValue": {"constant": 1}}}},
                }
            }
        },
    }
    ir["root"]["dag"]["tasks"]["b"] = {
        "componentRef": {"name": "comp-for-loop-1"},
        "dependentTasks": ["a"],
        "inputs": {
            "parameters": {
                "items": {"taskOutputParameter": {"producerTask": "a", "outputParameterKey": "out"}}
            }
        },
        "parameterIterator": {"itemInput": "item", "items": {"inputParameter": "items"}},
    }
    spec = parse_pipeline_spec(ir)
    run = FakeRun(spec, ctx(), {"a": lambda launch: {"out": "not a list"}})
    assert run.run().state == NodeState.FAILED
    assert run.records["root/b"].kind == NodeKind.LOOP
    assert run.records["root/b"].error == "cannot iterate over input 'items': the string is not a JSON list"
    # A JSON list passed as a string is iterated, as KFP's driver does.
    run = FakeRun(spec, ctx(), {"a": lambda launch: {"out": '["p", "q"]'}})
    assert run.run().state == NodeState.SUCCEEDED
    assert run.records["root/b#1"].inputs.parameters["item"] == "q"


# -- parallelism -----------------------------------------------------------------------------


def test_parallelism_limit_caps_unfinished_iterations() -> None:
    spec = load_spec("pipeline_with_parallelfor_parallelism.yaml")
    peaks: dict[str, int] = {}

    def watch(run: FakeRun) -> None:
        for loop in ("root/for-loop-1", "root/for-loop-8"):
            running = [
                k
                for k, r in run.records.items()
                if k.startswith(loop + "#") and "/" not in k[len(loop) :] and r.state == NodeState.RUNNING
            ]
            peaks[loop] = max(peaks.get(loop, 0), len(running))

    params = {"loop_parameter": ["a", "b", "c", "d", "e"]}
    behaviours = {
        f"list-dict-maker-{n}": (lambda launch: {"Output": [{"a": 1}, {"a": 2}]})
        for n in ("0", "1", "2", "3", "1-2")
    }
    run = FakeRun(spec, ctx(parameters=params), behaviours)
    run.on_round = watch
    assert run.run(batch=True).state == NodeState.SUCCEEDED
    assert peaks["root/for-loop-1"] == 2  # parallelismLimit: 2, five items
    assert peaks["root/for-loop-8"] == 1  # parallelismLimit: 1
    assert len([k for k in run.records if k.startswith("root/for-loop-1#") and k.count("/") == 1]) == 5
    ints = [
        launch.input_parameters["x"] for launch in run.launched if launch.component_name == "comp-print-int"
    ]
    assert ints == [1, 2, 3]  # parseJson(string_value)["a"] over raw items, in order, as ints


# -- conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ran"),
    [(3.0, "big"), (2.0, "medium"), (1.0, "small"), (2, "medium"), (0.5, "small")],
)
def test_if_elif_else_with_double(value: Any, ran: str) -> None:
    # The Elif is "x > double(1)": kfp.local cannot evaluate double() and skips it.
    spec = compiled.if_elif_else_on_float()
    run = FakeRun(spec, ctx(), {"make-float": lambda launch: {"Output": value}})
    assert run.run().state == NodeState.SUCCEEDED
    shown = [
        launch.input_parameters["msg"]
        for launch in run.launched
        if launch.component_name.startswith("comp-show")
    ]
    assert shown == [ran]
    skipped = {k: run.reasons[k] for k, r in run.records.items() if r.state == NodeState.SKIPPED}
    assert len(skipped) == 2
    assert all(reason.startswith("condition false: ") for reason in skipped.values())


def test_condition_error_fails_the_task_with_a_clear_message() -> None:
    ir = minimal_ir()
    ir["components"]["comp-b"]["inputDefinitions"]["parameters"]["y"]["parameterType"] = "STRING"
    ir["root"]["dag"]["tasks"]["b"]["triggerPolicy"] = {"condition": "int(inputs.parameter_values['y']) > 1"}
    # The int output 7 reaches b as the STRING "7"; int("7") > 1 holds.
    run = FakeRun(parse_pipeline_spec(ir), ctx(), {"a": lambda launch: {"out": 7}})
    assert run.run().state == NodeState.SUCCEEDED
    assert run.records["root/b"].inputs.parameters == {"y": "7"}

    ir["root"]["dag"]["tasks"]["b"]["triggerPolicy"] = {"condition": "inputs.parameter_values['missing'] > 1"}
    run = FakeRun(parse_pipeline_spec(ir), ctx(), {"a": lambda launch: {"out": 7}})
    outcome = run.run()
    assert outcome.state == NodeState.FAILED
    assert run.state("root/b") == NodeState.FAILED
    error = run.records["root/b"].error or ""
    assert "could not be evaluated" in error
    assert "no such key: missing" in error
    assert outcome.error == f"task 'b' failed: {error}"


def test_if_elif_else_with_oneof_picks_the_branch_that_ran() -> None:
    spec = load_spec("if_elif_else_with_oneof_parameters.yaml")
    final: list[Any] = []
    behaviours = {
        "flip-three-sided-die": lambda launch: {"Output": "tails"},
        "print-and-return": lambda launch: {"Output": launch.input_parameters["text"]},
        "print-and-return-2": lambda launch: {"Output": launch.input_parameters["text"]},
        "special-print-and-return": lambda launch: {"output_key": launch.input_parameters["text"]},
    }
    run = FakeRun(spec, ctx(), behaviours)
    run.behaviours["print-and-return"] = lambda launch: (
        final.append(launch.input_parameters["text"]) or {"Output": launch.input_parameters["text"]}
    )
    outcome = run.run()
    assert outcome.state == NodeState.SUCCEEDED
    base = "root/roll-die-pipeline/condition-branches-1"
    assert run.state(f"{base}/condition-2") == NodeState.SKIPPED
    assert run.state(f"{base}/condition-3") == NodeState.SUCCEEDED
    assert run.state(f"{base}/condition-4") == NodeState.SKIPPED
    assert run.outputs("root/roll-die-pipeline").parameters == {"Output": "Got tails!"}
    assert final[-1] == "Got tails!"
    assert outcome.outputs.parameters == {"Output": "Got tails!"}


@pytest.mark.parametrize(("pick_a", "branch"), [(True, "branch-a"), (False, "branch-b")])
def test_oneof_with_boolean_condition(pick_a: bool, branch: str) -> None:
    spec = load_spec("local_execution/local_execution_pipeline_with_oneof.yaml")
    behaviours = {
        "branch-a": lambda launch: {"Output": "A"},
        "branch-b": lambda launch: {"Output": "B"},
        "tag-selected": lambda launch: {"Output": "selected " + launch.input_parameters["value"]},
    }
    run = FakeRun(spec, ctx(parameters={"pick_a": pick_a}), behaviours)
    outcome = run.run()
    assert outcome.outputs.parameters == {"Output": f"selected {branch[-1].upper()}"}
    assert [n for n in run.launched_names() if n.startswith("branch")] == [branch]


@pytest.mark.parametrize(
    ("coin", "producer"), [("heads", "param-to-artifact"), ("tails", "param-to-artifact-2")]
)
def test_oneof_artifacts_take_the_artifact_of_the_branch_that_ran(coin: str, producer: str) -> None:
    spec = load_spec("if_else_with_oneof_artifacts.yaml")
    printed: list[ArtifactRef] = []

    def to_artifact(launch: StepLaunch) -> StepResult:
        return StepResult(artifact_metadata={"a": {"val": launch.input_parameters["val"]}})

    behaviours = {
        "flip-coin": lambda launch: {"Output": coin},
        "param-to-artifact": to_artifact,
        "param-to-artifact-2": to_artifact,
        "print-artifact": lambda launch: printed.extend(launch.input_artifacts["a"]),
    }
    run = FakeRun(spec, ctx(), behaviours)
    assert run.run().state == NodeState.SUCCEEDED
    branch = "condition-2" if coin == "heads" else "condition-3"
    made = run.artifact(f"root/flip-coin-pipeline/condition-branches-1/{branch}/{producer}", "a")
    assert made.metadata == {"val": coin}
    assert printed == [made, made]  # inside the sub-pipeline and at the root


# -- nesting ---------------------------------------------------------------------------------


def test_nested_loops_with_sub_variables() -> None:
    spec = load_spec("pipeline_with_nested_loops.yaml")
    run = FakeRun(spec, ctx())
    assert run.run(batch=True).state == NodeState.SUCCEEDED
    msgs = sorted(launch.input_parameters["msg"] for launch in run.launched if launch.task_name == "print-op")
    assert msgs == ["1", "11", "2", "22"]
    pairs = sorted(
        (launch.input_parameters["msg"], launch.input_parameters["msg2"])
        for launch in run.launched
        if launch.task_name == "print-op-3"
    )
    assert pairs == [(a, b) for a in ("1", "2") for b in ("100", "200", "300")]
    assert "root/for-loop-1#1/for-loop-2#0/print-op" in run.records
    assert run.records["root/for-loop-1#1/for-loop-2#0/print-op"].inputs.parameters == {"msg": "11"}
    launch = next(
        launch for launch in run.launched if launch.key == "root/for-loop-4#1/for-loop-6#2/print-op-3"
    )
    assert launch.iteration_index == 2


def test_nested_pipeline_with_conditions_inside_a_loop() -> None:
    spec = load_spec("parallel_and_nested/pipeline_in_pipeline_complex.yaml")
    behaviours = {"print-op1": lambda launch: {"Output": launch.input_parameters["msg"]}}
    run = FakeRun(spec, ctx(), behaviours)
    assert run.run(batch=True).state == NodeState.SUCCEEDED
    assert run.state("root/for-loop-2#0/inner-pipeline/condition-1") == NodeState.SUCCEEDED
    assert run.state("root/for-loop-2#0/inner-pipeline/condition-2") == NodeState.SKIPPED
    assert run.state("root/for-loop-2#1/inner-pipeline/condition-1") == NodeState.SKIPPED
    assert run.state("root/for-loop-2#1/inner-pipeline/condition-2") == NodeState.SUCCEEDED
    assert run.records["root/for-loop-2#1/inner-pipeline"].kind == NodeKind.DAG
    assert run.records["root/for-loop-2#1/inner-pipeline"].inputs.parameters == {"msg": "world!"}


def test_nested_pipeline_optional_input_left_out() -> None:
    spec = load_spec("parallel_and_nested/nested_pipeline_opt_inputs_nil_compiled.yaml")
    run = FakeRun(spec, ctx())
    assert run.run(batch=True).state == NodeState.SUCCEEDED
    for launch in run.launched:
        assert None not in launch.input_parameters.values()


# -- failures, exit handlers, ignore_upstream_failure -----------------------------------------


def test_failed_upstream_skips_dependents_with_a_reason() -> None:
    spec = parse_pipeline_spec(minimal_ir())
    run = FakeRun(spec, ctx(), {"a": fail("exit code 3")})
    outcome = run.run()
    assert outcome.state == NodeState.FAILED
    assert run.state("root/b") == NodeState.SKIPPED
    assert run.reasons["root/b"] == "upstream 'a' failed"
    assert outcome.error == "task 'a' failed: exit code 3"


def test_exit_handler_runs_and_the_run_still_fails() -> None:
    spec = load_spec("failing/pipeline_with_exit_handler.yaml")
    run = FakeRun(spec, ctx(), {"fail-op": fail("Task failed.")})
    outcome = run.run(batch=True)
    assert outcome.state == NodeState.FAILED
    assert run.state("root/exit-handler-1/fail-op") == NodeState.FAILED
    assert run.state("root/exit-handler-1/print-op-2") == NodeState.SUCCEEDED
    assert run.state("root/exit-handler-1") == NodeState.FAILED
    assert run.state("root/print-op") == NodeState.SUCCEEDED  # the exit task
    assert "Task failed." in (outcome.error or "")
    assert run.launched_names()[-1] == "print-op"


def test_exit_task_sees_the_real_final_status() -> None:
    spec = load_spec("pipeline_with_task_final_status.yaml")
    statuses: list[dict[str, Any]] = []
    behaviours = {
        "fail-op": fail("Task failed."),
        "exit-op": lambda launch: statuses.append(launch.input_parameters["status"]),
    }
    run = FakeRun(spec, ctx(resource_name="wf-abc"), behaviours)
    assert run.run(batch=True).state == NodeState.FAILED
    (status,) = statuses
    assert status["state"] == "FAILED"
    assert status["pipeline_task_name"] == "exit-handler-1"
    assert status["pipeline_job_resource_name"] == "wf-abc"
    assert status["error"]["code"] == 5
    assert "Task failed." in status["error"]["message"]


def test_exit_task_sees_success() -> None:
    spec = load_spec("local_execution/local_execution_pipeline_with_exit_handler.yaml")
    statuses: list[dict[str, Any]] = []
    run = FakeRun(spec, ctx())
    exit_task = next(
        t for t in spec.root.dag.tasks.values() if t.trigger.strategy == "ALL_UPSTREAM_TASKS_COMPLETED"
    )  # type: ignore[union-attr]
    run.behaviours[exit_task.display_name] = lambda launch: statuses.append(
        next(v for v in launch.input_parameters.values() if isinstance(v, dict))
    )
    assert run.run().state == NodeState.SUCCEEDED
    # KFP's backend reports a successful producer as COMPLETE (corpus
    # critical/pipeline_with_input_status_state.yaml asserts exactly that).
    assert statuses[0]["state"] == "COMPLETE"
    assert "message" not in statuses[0]["error"]


def test_ignore_upstream_failure_runs_cleanup_and_run_fails() -> None:
    spec = load_spec("local_execution/local_execution_pipeline_with_ignore_upstream_failure.yaml")
    markers: list[str] = []
    behaviours = {
        "fail-always": fail("upstream failed intentionally"),
        "write-marker": lambda launch: (
            markers.append(launch.input_parameters["marker_path"]) or {"Output": "cleanup_ran"}
        ),
    }
    run = FakeRun(spec, ctx(parameters={"marker_path": "/tmp/m"}), behaviours)
    outcome = run.run()
    assert markers == ["/tmp/m"]
    assert run.state("root/write-marker") == NodeState.SUCCEEDED
    assert outcome.state == NodeState.FAILED


def test_ignore_upstream_failure_falls_back_to_the_input_default() -> None:
    # print_op(message=fail_op.output).ignore_upstream_failure(): the failed producer has no
    # output, so the component's default ('default') is used, as in KFP.
    spec = load_spec("pipeline_with_task_using_ignore_upstream_failure.yaml")
    got: list[dict[str, Any]] = []
    behaviours = {
        "fail-op": fail("exit 1"),
        "print-op": lambda launch: got.append(dict(launch.input_parameters)),
    }
    outcome = FakeRun(spec, ctx(), behaviours).run()
    assert got == [{"message": "default"}]
    assert outcome.state == NodeState.FAILED
    assert outcome.error == "task 'fail-op' failed: exit 1"


# -- cancellation -----------------------------------------------------------------------------


def test_cancel_before_anything_ran() -> None:
    spec = parse_pipeline_spec(minimal_ir())
    run = FakeRun(spec, ctx())
    run.plan()
    assert run.state("root/a") == NodeState.PENDING
    run.ctx = ctx(canceling=True)
    plan = run.plan()
    assert [(c.key, c.state) for c in plan.completes][:1] == [("root/a", NodeState.CANCELED)]
    assert run.state("root/b") == NodeState.CANCELED
    assert "canceled" in run.reasons["root/b"]
    assert plan.launches == []
    assert plan.run_outcome is not None
    assert plan.run_outcome.state == NodeState.CANCELED


def test_cancel_waits_for_running_steps() -> None:
    spec = compiled.collected_ints()
    run = FakeRun(
        spec, ctx(parameters={"numbers": [1, 2, 3, 4, 5]}), {"double": lambda launch: {"Output": 0}}
    )
    run.plan()
    running = [k for k, r in run.records.items() if r.state == NodeState.PENDING]
    assert len(running) == 2  # parallelism=2
    for key in running:
        run.records[key] = dataclasses.replace(run.records[key], state=NodeState.RUNNING)
        run.pending.pop(key)
    run.ctx = ctx(parameters={"numbers": [1, 2, 3, 4, 5]}, canceling=True)
    plan = run.plan()
    assert sorted(plan.to_terminate) == sorted(running)
    # No new iterations, nothing launched; the task that never started is canceled.
    assert [(c.key, c.state) for c in plan.creates] == [("root/total", NodeState.CANCELED)]
    assert plan.launches == []
    assert plan.run_outcome is None
    for key in running:
        run.records[key] = dataclasses.replace(run.records[key], state=NodeState.CANCELED)
    plan = run.plan()
    assert plan.run_outcome is not None
    assert plan.run_outcome.state == NodeState.CANCELED
    assert run.state("root/for-loop-1") == NodeState.CANCELED
    assert len([k for k in run.records if k.startswith("root/for-loop-1#") and k.count("/") == 1]) == 2


def test_cancel_before_start_creates_canceled_root() -> None:
    spec = parse_pipeline_spec(minimal_ir())
    plan = ActiveExecution(spec, ctx(canceling=True), []).plan()
    assert [(c.key, c.state) for c in plan.creates] == [("root", NodeState.CANCELED)]
    assert plan.run_outcome is not None
    assert plan.run_outcome.state == NodeState.CANCELED


# -- idempotence and record consistency ------------------------------------------------------------


def test_plan_is_idempotent_and_repeatable() -> None:
    spec = load_spec("pipeline_with_loops_and_conditions.yaml")
    run = FakeRun(spec, ctx())
    run.plan()
    records = list(run.records.values())
    again = ActiveExecution(spec, ctx(), records)
    first = again.plan()
    assert first.is_empty()
    assert again.plan() is first


def test_inconsistent_records_are_reported() -> None:
    spec = parse_pipeline_spec(minimal_ir())
    with pytest.raises(EngineError, match="no parent record"):
        ActiveExecution(spec, ctx(), [NodeRecord("root/a", NodeKind.CONTAINER, NodeState.PENDING)])
    records = [
        NodeRecord("root", NodeKind.ROOT, NodeState.RUNNING),
        NodeRecord("root/zzz", NodeKind.CONTAINER, NodeState.PENDING),
    ]
    with pytest.raises(EngineError, match="does not correspond"):
        ActiveExecution(spec, ctx(), records).plan()


def test_records_with_plain_string_kinds_and_states() -> None:
    # The Django model hands back plain strings.
    spec = parse_pipeline_spec(minimal_ir())
    records = [
        NodeRecord("root", "ROOT", "RUNNING", inputs=NodeIO({"n": 1})),
        NodeRecord("root/a", "CONTAINER", "SUCCEEDED", inputs=NodeIO({"x": 1}), outputs=NodeIO({"out": 5})),
    ]
    plan = ActiveExecution(spec, ctx(), records).plan()
    assert [c.key for c in plan.creates] == ["root/b"]
    assert plan.launches[0].input_parameters == {"y": 5}


def test_unsupported_executor_fails_the_task() -> None:
    ir = minimal_ir()
    ir["deploymentSpec"]["executors"]["exec-b"] = {"resolver": {"outputArtifactQueries": {}}}
    run = FakeRun(parse_pipeline_spec(ir), ctx(), {"a": lambda launch: {"out": 1}})
    assert run.run().state == NodeState.FAILED
    assert "resolver" in (run.records["root/b"].error or "")


def test_type_mismatch_fails_the_consumer() -> None:
    ir = minimal_ir()
    ir["components"]["comp-a"]["outputDefinitions"]["parameters"]["out"]["parameterType"] = "STRING"
    run = FakeRun(parse_pipeline_spec(ir), ctx(), {"a": lambda launch: {"out": "seven"}})
    assert run.run().state == NodeState.FAILED
    assert run.records["root/b"].error == "input 'y' expects a number (NUMBER_INTEGER) but got a string"


def test_step_launch_carries_everything_to_run() -> None:
    spec = load_spec("pipeline_with_string_machine_fields_pipeline_input.yaml")
    plan = ActiveExecution(spec, ctx(pipeline_root="s3://bucket/root"), []).plan()
    (launch,) = plan.launches
    assert launch.container is not None
    resources = launch.container.resources
    # set_cpu_limit(pipeline_input): the placeholders are resolved from the task's inputs.
    assert resources.cpu_limit == spec.root.input_definitions.parameters["cpu_limit"].default
    assert "{{" not in resources.memory_limit
    assert resources.accelerator_count == "1"
    assert launch.input_parameters["a"] == 1
    assert type(launch.input_parameters["a"]) is int
    assert launch.pipeline_root == "s3://bucket/root"
    assert launch.placeholder_context.pipeline_job_name == "my run"
    assert launch.placeholder_context.pipeline_task_name == "sum-numbers"
    assert launch.caching.enabled is True
    assert len(launch.caching.fingerprint) == 64


def test_platform_config_references_are_resolved() -> None:
    spec = load_spec("critical/pipeline_with_secret_as_env.yaml")
    run = FakeRun(
        spec,
        ctx(
            parameters={"secret_parm": "my-secret"}
            if "secret_parm" in spec.root.input_definitions.parameters
            else {}
        ),
    )
    run.run(batch=True)
    configs = [launch.platform_config for launch in run.launched if launch.platform_config]
    assert configs
    resolved = [
        entry["secretNameParameter"]["resolvedValue"]
        for cfg in configs
        for entry in cfg.get("secretAsEnv", [])
        if "secretNameParameter" in entry and "resolvedValue" in entry["secretNameParameter"]
    ]
    assert resolved
    assert all(isinstance(v, str) and v for v in resolved)


def test_timeout_and_pvc_names_from_the_platform_spec() -> None:
    ir = minimal_ir()
    ir["root"]["inputDefinitions"]["parameters"]["claim"] = {
        "parameterType": "STRING",
        "defaultValue": "data-pvc",
    }
    platform = {
        "platforms": {
            "kubernetes": {
                "deploymentSpec": {
                    "executors": {
                        "exec-a": {
                            "activeDeadlineSeconds": "90",
                            "pvcMount": [
                                {
                                    "mountPath": "/data",
                                    "pvcNameParameter": {"componentInputParameter": "claim"},
                                },
                                {"mountPath": "/more", "constant": "static-pvc"},
                            ],
                        }
                    }
                }
            }
        }
    }
    spec = parse_pipeline_spec(ir, platform)
    (launch,) = ActiveExecution(spec, ctx(), []).plan().launches
    assert launch.timeout_seconds == 90.0
    assert launch.platform_config["pvcMount"][0]["pvcNameParameter"]["resolvedValue"] == "data-pvc"
    other = ActiveExecution(spec, ctx(parameters={"claim": "other-pvc"}), []).plan().launches[0]
    assert other.input_parameters == launch.input_parameters
    # Mounted PVC names are part of the cache key, as in KFP.
    assert other.caching.fingerprint != launch.caching.fingerprint
    assert (
        ActiveExecution(spec, ctx(), []).plan().launches[0].caching.fingerprint == launch.caching.fingerprint
    )


def test_run_context_placeholders_in_constants() -> None:
    spec = load_spec("critical/pipeline_with_placeholders.yaml")
    from datetime import UTC, datetime

    context = ctx(
        run_id="uuid-1",
        run_name="nice name",
        resource_name="wf-1",
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )
    plan = ActiveExecution(spec, context, []).plan()
    (launch,) = plan.launches
    values = set(launch.input_parameters.values())
    assert {"uuid-1", "nice name", "wf-1"} <= values
    assert launch.display_name in values  # {{$.pipeline_task_name}}
    assert launch.placeholder_context.pipeline_job_create_time_utc == "2024-05-01T12:00:00Z"


def test_importer_step() -> None:
    spec = load_spec("pipeline_with_dynamic_importer_metadata.yaml")
    run = FakeRun(spec, ctx(), {"make-name": lambda launch: {"Output": "made"}})
    assert run.run(batch=True).state == NodeState.SUCCEEDED
    importer = run.records["root/importer"]
    assert importer.kind == NodeKind.IMPORTER
    artifact = importer.outputs.artifacts["artifact"][0]
    assert artifact.schema_title == "system.Dataset"
    assert artifact.id


# -- artifacts through loops ---------------------------------------------------------------------


def test_artifact_iterator_over_collected_artifacts() -> None:
    spec = load_spec("pipeline_with_parallelfor_list_artifacts_GH-12033.yaml")
    seen: list[tuple[str, str]] = []

    def make(launch: StepLaunch) -> StepResult:
        return StepResult(artifact_metadata={"Output": {"text": launch.input_parameters["data"]}})

    def show(launch: StepLaunch) -> dict[str, Any]:
        (artifact,) = launch.input_artifacts["artifact"]
        seen.append((launch.key, str(artifact.metadata["text"])))
        return {"Output": artifact.uri}

    behaviours = {
        "make-artifact": make,
        "make-dataset": make,
        "print-artifact-name": show,
        "print-artifact-name-2": show,
    }
    run = FakeRun(spec, ctx(), behaviours)
    assert run.run(batch=True).state == NodeState.SUCCEEDED
    collected = run.outputs("root/make-artifacts").artifacts["Output"]
    assert [a.metadata["text"] for a in collected] == ["Hello", ",", " ", "world!"]
    assert len({a.id for a in collected}) == 4
    loop = run.records["root/for-loop-1"]
    assert loop.iteration_count == 4
    assert run.records["root/for-loop-1#2"].inputs.artifacts[
        "pipelinechannel--make-artifacts-Output-loop-item"
    ] == [collected[2]]
    assert sorted(seen) == sorted(
        [
            (f"root/for-loop-{n}#{i}/print-artifact-name{s}", t)
            for n, s in ((1, ""), (2, "-2"))
            for i, t in enumerate(["Hello", ",", " ", "world!"])
        ]
    )


def test_collected_artifacts_from_nested_loops_are_flattened_in_order() -> None:
    spec = load_spec("collected_artifacts.yaml")
    received: list[list[str]] = []

    def split(launch: StepLaunch) -> dict[str, Any]:
        return {"Output": launch.input_parameters["model_ids"].split(",")}

    def model(launch: StepLaunch) -> StepResult:
        (data,) = launch.input_artifacts["data"]
        return StepResult(
            artifact_metadata={"results": {"tag": f"{launch.input_parameters['id']}-{data.metadata['char']}"}}
        )

    def dataset(launch: StepLaunch) -> StepResult:
        return StepResult(artifact_metadata={"data": {"char": launch.input_parameters["content"]}})

    def read_models(launch: StepLaunch) -> dict[str, Any]:
        received.append([a.metadata["tag"] for a in launch.input_artifacts["models"]])
        return {"Output": "ok"}

    behaviours = {
        "split-ids": split,
        "split-chars": split,
        "create-dataset": dataset,
        "read-single-dataset-generate-model": model,
        "read-models": read_models,
    }
    run = FakeRun(spec, ctx(), behaviours)
    assert run.run(pick=lambda keys: keys[-1:]).state == NodeState.SUCCEEDED
    everything = [f"{i}-{c}" for i in ("s1", "s2", "s3") for c in ("x", "y", "z")]
    # Inside each outer iteration: the inner loop's three models; at the root: all nine, in order.
    assert sorted(received[:-1]) == [[f"{i}-{c}" for c in ("x", "y", "z")] for i in ("s1", "s2", "s3")]
    assert received[-1] == everything


def test_collected_parameters_from_nested_loops_are_lists_of_lists() -> None:
    ir = minimal_ir()
    ir["components"]["comp-inner"] = {
        "inputDefinitions": {
            "parameters": {"row": {"parameterType": "LIST"}, "cell": {"parameterType": "NUMBER_INTEGER"}}
        },
        "outputDefinitions": {"parameters": {"vals": {"parameterType": "LIST"}}},
        "dag": {
            "tasks": {
                "a": {
                    "componentRef": {"name": "comp-a"},
                    "inputs": {"parameters": {"x": {"componentInputParameter": "cell"}}},
                }
            },
            "outputs": {
                "parameters": {
                    "vals": {"valueFromParameter": {"producerSubtask": "a", "outputParameterKey": "out"}}
                }
            },
        },
    }
    ir["components"]["comp-outer"] = {
        "inputDefinitions": {"parameters": {"row": {"parameterType": "LIST"}}},
        "outputDefinitions": {"parameters": {"vals": {"parameterType": "LIST"}}},
        "dag": {
            "tasks": {
                "inner": {
                    "componentRef": {"name": "comp-inner"},
                    "inputs": {"parameters": {"row": {"componentInputParameter": "row"}}},
                    "parameterIterator": {"itemInput": "cell", "items": {"inputParameter": "row"}},
                }
            },
            "outputs": {
                "parameters": {
                    "vals": {"valueFromParameter": {"producerSubtask": "inner", "outputParameterKey": "vals"}}
                }
            },
        },
    }
    ir["root"]["dag"]["tasks"] = {
        "outer": {
            "componentRef": {"name": "comp-outer"},
            "parameterIterator": {"itemInput": "row", "items": {"raw": "[[1, 2], [3], []]"}},
        }
    }
    ir["root"]["dag"]["outputs"] = {
        "parameters": {
            "grid": {"valueFromParameter": {"producerSubtask": "outer", "outputParameterKey": "vals"}}
        }
    }
    run = FakeRun(
        parse_pipeline_spec(ir), ctx(), {"a": lambda launch: {"out": launch.input_parameters["x"] * 10}}
    )
    outcome = run.run(batch=True)
    assert outcome.outputs.parameters == {"grid": [[10, 20], [30], []]}
