"""The reduced pipeline that re-runs one step (apps.engine.rerun), on small IR documents."""

from __future__ import annotations

import pytest

from apps.engine.rerun import RecordedIO, RerunError, build_rerun_spec, task_path_of
from apps.importers import import_spec_dict
from tests.runs.ir import container_pipeline


def _spec() -> dict:  # type: ignore[type-arg]
    return container_pipeline(
        "chain",
        {
            "a": {"command": ["echo"], "outputs": ["out"], "inputs": {"n": {"param": "n"}}},
            "b": {"command": ["echo"], "outputs": ["out"], "inputs": {"v": {"task": "a", "output": "out"}}},
            "c": {"command": ["echo"], "inputs": {"v": {"task": "b", "output": "out"}, "n": {"param": "n"}}},
            "d": {"command": ["echo"], "inputs": {"v": {"task": "a", "output": "out"}}},
        },
        parameters={"n": {"parameterType": "STRING"}},
    )


def test_the_step_alone_takes_its_recorded_inputs_as_parameter_defaults() -> None:
    plan = build_rerun_spec(_spec(), task_key="root/b", step_inputs=RecordedIO(parameters={"v": "seen"}))
    root = plan.pipeline_spec["root"]
    assert list(root["dag"]["tasks"]) == ["b"]
    assert root["inputDefinitions"]["parameters"]["v"] == {"parameterType": "STRING", "defaultValue": "seen"}
    assert root["dag"]["tasks"]["b"]["inputs"]["parameters"]["v"] == {"componentInputParameter": "v"}
    assert root["dag"]["tasks"]["b"]["cachingOptions"] == {"enableCache": False}
    assert plan.parameters == {"v": "STRING"}
    import_spec_dict(plan.pipeline_spec, None)  # valid IR for the normal import path


def test_downstream_tasks_take_outside_inputs_from_the_records() -> None:
    plan = build_rerun_spec(
        _spec(),
        task_key="root/b",
        step_inputs=RecordedIO(parameters={"v": "seen"}),
        include_downstream=True,
        sibling_outputs={"a": RecordedIO(parameters={"out": "from-a"})},
        parent_inputs=RecordedIO(parameters={"n": "N"}),
    )
    tasks = plan.pipeline_spec["root"]["dag"]["tasks"]
    assert plan.tasks == ("b", "c")  # d depends on a only
    c = tasks["c"]["inputs"]["parameters"]
    assert c["v"] == {"taskOutputParameter": {"producerTask": "b", "outputParameterKey": "out"}}
    assert c["n"] == {"runtimeValue": {"constant": "N"}}
    assert tasks["c"]["dependentTasks"] == ["b"]
    import_spec_dict(plan.pipeline_spec, None)


def test_recorded_artifacts_become_importers() -> None:
    spec = _spec()
    spec["components"]["comp-b"]["inputDefinitions"]["artifacts"] = {
        "data": {"artifactType": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}}
    }
    ref = {"uri": "/data/x", "schema_title": "system.Dataset", "metadata": {"k": 1}}
    plan = build_rerun_spec(
        spec, task_key="root/b", step_inputs=RecordedIO(parameters={"v": "s"}, artifacts={"data": [ref]})
    )
    tasks = plan.pipeline_spec["root"]["dag"]["tasks"]
    importer = tasks["b"]["inputs"]["artifacts"]["data"]["taskOutputArtifact"]["producerTask"]
    assert tasks["b"]["dependentTasks"] == [importer]
    executor = plan.pipeline_spec["deploymentSpec"]["executors"][f"exec-{importer}"]["importer"]
    assert executor["artifactUri"] == {"constant": "/data/x"}
    assert executor["typeSchema"]["schemaTitle"] == "system.Dataset"
    import_spec_dict(plan.pipeline_spec, None)


@pytest.mark.parametrize(
    ("key", "inputs", "words"),
    [
        ("root/nope", {"v": "s"}, "no task 'nope'"),
        ("root", {}, "not the key of a task"),
        ("root/b", {}, "recorded no value for input 'v'"),
    ],
)
def test_what_cannot_be_rerun_is_named(key: str, inputs: dict, words: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(RerunError, match=words):
        build_rerun_spec(_spec(), task_key=key, step_inputs=RecordedIO(parameters=inputs))


def test_downstream_input_missing_from_the_records_is_refused() -> None:
    spec = _spec()
    spec["root"]["dag"]["tasks"]["c"]["inputs"]["parameters"]["n"] = {
        "taskOutputParameter": {"producerTask": "a", "outputParameterKey": "out"}
    }
    with pytest.raises(RerunError, match="task 'a' recorded no output 'out'"):
        build_rerun_spec(
            spec,
            task_key="root/b",
            step_inputs=RecordedIO(parameters={"v": "x"}),
            include_downstream=True,
            sibling_outputs={"a": RecordedIO(parameters={})},
        )
    with pytest.raises(RerunError, match="recorded no value for 'n'"):
        build_rerun_spec(
            _spec(),
            task_key="root/b",
            step_inputs=RecordedIO(parameters={"v": "x"}),
            include_downstream=True,
            parent_inputs=RecordedIO(),
        )


def test_iteration_indexes_are_dropped_from_task_paths() -> None:
    assert task_path_of("root/loop#3/inner") == ["loop", "inner"]
