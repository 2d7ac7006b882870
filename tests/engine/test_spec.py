"""parse_pipeline_spec: accepts every compiled corpus pipeline, refuses broken ones with exact paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apps.engine.spec import SpecError, format_path, parse_pipeline_spec
from tests.engine.corpus import container_executor, load_documents, load_spec, minimal_ir, valid_files

VALID_FILES = valid_files()


def test_corpus_is_present() -> None:
    # The shared corpus holds 150 compiled pipelines; guard against a silent empty parametrisation.
    assert len(VALID_FILES) >= 140


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_valid_corpus_file_parses(path: Path) -> None:
    ir, platform = load_documents(path)
    spec = parse_pipeline_spec(ir, platform)
    assert spec.name == ir["pipelineInfo"]["name"]
    assert spec.root.dag is not None
    assert set(spec.root.dag.tasks) == set(ir["root"]["dag"]["tasks"])
    if platform is not None:
        assert set(spec.platform.executors) == set(
            platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
        )


def test_parsed_fields_match_the_ir() -> None:
    spec = load_spec("critical/pipeline_with_retry.yaml")
    task = next(t for t in spec.root.dag.tasks.values() if t.retry is not None)  # type: ignore[union-attr]
    assert task.retry is not None
    assert task.retry.max_retry_count == 3
    assert task.retry.backoff_duration == 0.0
    assert task.retry.backoff_max_duration == 3600.0

    loops = load_spec("pipeline_with_parallelfor_parallelism.yaml")
    limited = [t for t in loops.root.dag.tasks.values() if t.parallelism_limit]  # type: ignore[union-attr]
    assert limited
    assert all(t.is_loop for t in limited)

    exit_spec = load_spec("failing/pipeline_with_exit_handler.yaml")
    print_op = exit_spec.root.dag.tasks["print-op"]  # type: ignore[union-attr]
    assert print_op.trigger.strategy == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert print_op.dependent_tasks == ("exit-handler-1",)


def test_integer_defaults_written_as_floats_become_ints() -> None:
    spec = parse_pipeline_spec(minimal_ir())
    default = spec.root.input_definitions.parameters["n"].default
    assert default == 1
    assert isinstance(default, int)


def test_implicit_producer_dependency_is_upstream() -> None:
    ir = minimal_ir()
    del ir["root"]["dag"]["tasks"]["b"]["dependentTasks"]
    spec = parse_pipeline_spec(ir)
    assert spec.root.dag is not None
    assert spec.root.dag.tasks["b"].upstream_tasks == ("a",)


def _refuse(ir: Any, platform: Any = None) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_pipeline_spec(ir, platform)
    return info.value


def test_refuses_non_mapping_and_missing_root() -> None:
    assert _refuse(None).path == ()
    ir = minimal_ir()
    del ir["root"]
    err = _refuse(ir)
    assert err.path == ()
    assert "root" in err.message


def test_refuses_missing_pipeline_name() -> None:
    ir = minimal_ir()
    ir["pipelineInfo"]["name"] = None
    err = _refuse(ir)
    assert err.path == ("pipelineInfo", "name")
    assert "no name" in err.message


def test_refuses_unknown_component_reference() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["a"]["componentRef"]["name"] = "comp-missing"
    err = _refuse(ir)
    assert err.path == ("root", "dag", "tasks", "a", "componentRef", "name")
    assert "comp-missing" in err.message
    assert "not defined" in err.message
    assert str(err).endswith("(at root.dag.tasks.a.componentRef.name)")


def test_refuses_unknown_executor_label() -> None:
    ir = minimal_ir()
    ir["components"]["comp-b"]["executorLabel"] = "exec-nope"
    err = _refuse(ir)
    assert err.path == ("components", "comp-b", "executorLabel")
    assert "exec-nope" in err.message


def test_refuses_dependent_task_outside_the_dag() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["b"]["dependentTasks"] = ["a", "ghost"]
    err = _refuse(ir)
    assert err.path == ("root", "dag", "tasks", "b", "dependentTasks", 1)
    assert "'ghost'" in err.message


def test_refuses_missing_producer_task() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["b"]["inputs"]["parameters"]["y"]["taskOutputParameter"]["producerTask"] = (
        "zzz"
    )
    err = _refuse(ir)
    assert err.path == (
        "root",
        "dag",
        "tasks",
        "b",
        "inputs",
        "parameters",
        "y",
        "taskOutputParameter",
        "producerTask",
    )
    assert "'zzz'" in err.message


def test_refuses_dependency_cycle() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["a"]["dependentTasks"] = ["b"]
    err = _refuse(ir)
    assert "cycle" in err.message
    assert "a -> b -> a" in err.message or "b -> a -> b" in err.message
    assert err.path[:3] == ("root", "dag", "tasks")
    assert err.path[-1] == "dependentTasks"


def test_refuses_unknown_parameter_type() -> None:
    ir = minimal_ir()
    ir["components"]["comp-a"]["inputDefinitions"]["parameters"]["x"]["parameterType"] = "INTEGERISH"
    err = _refuse(ir)
    assert err.path == ("components", "comp-a", "inputDefinitions", "parameters", "x", "parameterType")
    assert "INTEGERISH" in err.message


def test_refuses_bad_condition() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["b"]["triggerPolicy"] = {"condition": "inputs.parameter_values['x'] =="}
    err = _refuse(ir)
    assert err.path == ("root", "dag", "tasks", "b", "triggerPolicy", "condition")
    assert "not valid CEL" in err.message


def test_refuses_unknown_trigger_strategy() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["b"]["triggerPolicy"] = {"strategy": "WHENEVER"}
    err = _refuse(ir)
    assert err.path == ("root", "dag", "tasks", "b", "triggerPolicy", "strategy")


def _loop_ir(iterator: dict[str, Any]) -> dict[str, Any]:
    ir = minimal_ir()
    ir["components"]["comp-for-loop-1"] = {
        "inputDefinitions": {"parameters": {"item": {"parameterType": "NUMBER_INTEGER"}}},
        "dag": {
            "tasks": {
                "a": {
                    "componentRef": {"name": "comp-a"},
                    "inputs": {"parameters": {"x": {"componentInputParameter": "item"}}},
                }
            }
        },
    }
    ir["root"]["dag"]["tasks"]["loop"] = {
        "componentRef": {"name": "comp-for-loop-1"},
        "parameterIterator": iterator,
    }
    return ir


def test_loop_iterator_shapes() -> None:
    parse_pipeline_spec(_loop_ir({"itemInput": "item", "items": {"raw": "[1, 2]"}}))

    err = _refuse(_loop_ir({"itemInput": "item", "items": {"raw": "{not json"}}))
    assert err.path == ("root", "dag", "tasks", "loop", "parameterIterator", "items", "raw")

    err = _refuse(_loop_ir({"itemInput": "item", "items": {"raw": '{"a": 1}'}}))
    assert "JSON list" in err.message

    err = _refuse(_loop_ir({"itemInput": "item", "items": {"inputParameter": "nope"}}))
    assert err.path == ("root", "dag", "tasks", "loop", "parameterIterator", "items", "inputParameter")

    err = _refuse(_loop_ir({"itemInput": "other", "items": {"raw": "[1]"}}))
    assert err.path == ("root", "dag", "tasks", "loop", "parameterIterator", "itemInput")

    err = _refuse(_loop_ir({"itemInput": "item", "items": {}}))
    assert err.path == ("root", "dag", "tasks", "loop", "parameterIterator", "items")


def test_refuses_component_input_the_dag_does_not_declare() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["a"]["inputs"]["parameters"]["x"] = {"componentInputParameter": "undeclared"}
    err = _refuse(ir)
    assert err.path == ("root", "dag", "tasks", "a", "inputs", "parameters", "x", "componentInputParameter")


def test_refuses_dag_output_from_unknown_subtask() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["outputs"] = {
        "parameters": {
            "o": {"valueFromParameter": {"producerSubtask": "nobody", "outputParameterKey": "out"}}
        }
    }
    err = _refuse(ir)
    assert err.path == ("root", "dag", "outputs", "parameters", "o", "valueFromParameter", "producerSubtask")


def test_refuses_condition_on_importer() -> None:
    ir = minimal_ir()
    ir["deploymentSpec"]["executors"]["exec-b"] = {
        "importer": {"artifactUri": {"constant": "gs://b/x"}, "typeSchema": {"schemaTitle": "system.Dataset"}}
    }
    ir["root"]["dag"]["tasks"]["b"]["triggerPolicy"] = {"condition": "true"}
    err = _refuse(ir)
    assert err.path == ("root", "dag", "tasks", "b", "triggerPolicy", "condition")
    assert "importer" in err.message


def test_refuses_recursive_components() -> None:
    ir = minimal_ir()
    ir["components"]["comp-self"] = {
        "dag": {"tasks": {"again": {"componentRef": {"name": "comp-self"}}}},
    }
    ir["root"]["dag"]["tasks"]["s"] = {"componentRef": {"name": "comp-self"}}
    err = _refuse(ir)
    assert "recursively" in err.message
    assert err.path == ("components", "comp-self")


def test_refuses_task_names_that_break_node_keys() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["x/y"] = {"componentRef": {"name": "comp-b"}}
    err = _refuse(ir)
    assert err.path == ("root", "dag", "tasks", "x/y")


def test_refuses_broken_structured_placeholder() -> None:
    ir = minimal_ir()
    ir["deploymentSpec"]["executors"]["exec-a"] = container_executor(command=["echo", '{"Concat": ["a", '])
    err = _refuse(ir)
    assert err.path == ("deploymentSpec", "executors", "exec-a", "container", "command", 1)


def test_refuses_platform_config_for_unknown_executor() -> None:
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-zzz": {}}}}}}
    err = _refuse(minimal_ir(), platform)
    assert err.path == ("platforms", "kubernetes", "deploymentSpec", "executors", "exec-zzz")


def test_refuses_bad_retry_duration() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["a"]["retryPolicy"] = {"maxRetryCount": 2, "backoffDuration": "soon"}
    err = _refuse(ir)
    assert err.path == ("root", "dag", "tasks", "a", "retryPolicy", "backoffDuration")


def test_format_path() -> None:
    assert format_path(("root", "dag", "tasks", "my-task", "dependentTasks", 0)) == (
        "root.dag.tasks['my-task'].dependentTasks[0]"
    )
