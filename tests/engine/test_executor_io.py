"""ExecutorInput built like KFP's, outputs collected like KFP's launcher, importers resolved."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from apps.engine.execution import ActiveExecution
from apps.engine.executor_io import (
    OutputError,
    build_executor_input,
    collect_outputs,
    default_parameter_files,
    parse_parameter_text,
    resolve_importer,
)
from apps.engine.keys import NodeKind, NodeState
from apps.engine.model import ArtifactRef, NodeIO, NodeRecord, RunContext, StepLaunch
from apps.engine.spec import parse_pipeline_spec
from tests.engine.corpus import load_spec, minimal_ir

CTX = RunContext(run_id="run-1")


def _launch(relative: str, params: dict[str, Any] | None = None) -> StepLaunch:
    spec = load_spec(relative)
    plan = ActiveExecution(spec, RunContext(run_id="r", parameters=params or {}), []).plan()
    return plan.launches[0]


def metrics_launch() -> StepLaunch:
    ir = minimal_ir()
    ir["components"]["comp-a"]["outputDefinitions"] = {
        "parameters": {
            "count": {"parameterType": "NUMBER_INTEGER"},
            "score": {"parameterType": "NUMBER_DOUBLE"},
            "ok": {"parameterType": "BOOLEAN"},
            "names": {"parameterType": "LIST"},
            "info": {"parameterType": "STRUCT"},
            "text": {"parameterType": "STRING"},
        },
        "artifacts": {
            "metrics": {"artifactType": {"schemaTitle": "system.Metrics", "schemaVersion": "0.0.1"}},
            "model": {"artifactType": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"}},
        },
    }
    ir["root"]["dag"]["tasks"]["b"]["inputs"]["parameters"]["y"]["taskOutputParameter"][
        "outputParameterKey"
    ] = "count"
    plan = ActiveExecution(parse_pipeline_spec(ir), CTX, []).plan()
    return plan.launches[0]


def test_executor_input_has_kfp_shape() -> None:
    launch = metrics_launch()
    uris = {"metrics": "gs://b/r/a/metrics", "model": "gs://b/r/a/model"}
    files = default_parameter_files(launch)
    executor_input = build_executor_input(launch, uris, files, "/tmp/kfp_outputs/output_metadata.json")
    assert executor_input == {
        "inputs": {"parameterValues": {"x": 1}},
        "outputs": {
            "outputFile": "/tmp/kfp_outputs/output_metadata.json",
            "parameters": {
                name: {"outputFile": f"/tmp/kfp/outputs/{name}"} for name in launch.output_parameters
            },
            "artifacts": {
                "metrics": {
                    "artifacts": [
                        {
                            "name": "metrics",
                            "type": {"schemaTitle": "system.Metrics", "schemaVersion": "0.0.1"},
                            "uri": "gs://b/r/a/metrics",
                            "metadata": {},
                        }
                    ]
                },
                "model": {
                    "artifacts": [
                        {
                            "name": "model",
                            "type": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"},
                            "uri": "gs://b/r/a/model",
                            "metadata": {},
                        }
                    ]
                },
            },
        },
    }
    # Ints stay ints on the wire.
    assert '"x":1' in json.dumps(executor_input, separators=(",", ":"))


def test_executor_input_artifacts_use_the_artifact_id_as_name() -> None:
    ir = minimal_ir()
    ir["components"]["comp-b"]["inputDefinitions"]["artifacts"] = {
        "data": {"artifactType": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}}
    }
    ir["components"]["comp-a"]["outputDefinitions"]["artifacts"] = {
        "data": {"artifactType": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}}
    }
    ir["root"]["dag"]["tasks"]["b"]["inputs"]["artifacts"] = {
        "data": {"taskOutputArtifact": {"producerTask": "a", "outputArtifactKey": "data"}}
    }
    ref = ArtifactRef("42", "data", "gs://b/data", "system.Dataset", "0.0.1", {"rows": 3})
    records = [
        NodeRecord("root", NodeKind.ROOT, NodeState.RUNNING, inputs=NodeIO({"n": 1})),
        NodeRecord(
            "root/a", NodeKind.CONTAINER, NodeState.SUCCEEDED, outputs=NodeIO({"out": 2}, {"data": [ref]})
        ),
    ]
    launch = ActiveExecution(parse_pipeline_spec(ir), CTX, records).plan().launches[0]
    executor_input = build_executor_input(launch, {}, {}, "/out.json")
    assert executor_input["inputs"] == {
        "parameterValues": {"y": 2},
        "artifacts": {
            "data": {
                "artifacts": [
                    {
                        "name": "42",
                        "type": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
                        "uri": "gs://b/data",
                        "metadata": {"rows": 3},
                    }
                ]
            }
        },
    }


def test_executor_input_needs_every_output_location() -> None:
    launch = metrics_launch()
    with pytest.raises(ValueError, match="no URI given"):
        build_executor_input(launch, {}, default_parameter_files(launch), "/out.json")


def test_collect_outputs_prefers_executor_output_and_parses_files_by_type() -> None:
    launch = metrics_launch()
    uris = {"metrics": "gs://b/metrics", "model": "gs://b/model"}
    executor_output = {
        "parameterValues": {"count": 7.0, "text": "from json"},
        "artifacts": {
            "metrics": {
                "artifacts": [{"name": "metrics", "uri": "gs://b/metrics", "metadata": {"accuracy": 0.9}}]
            }
        },
    }
    files = {
        "count": "999",  # ignored: executor_output.json wins
        "score": "0.25\n",
        "ok": "True",
        "names": '["a", 1]',
        "info": '{"k": {"n": 2}}',
        "text": "ignored",
    }
    outputs = collect_outputs(launch, executor_output, files, uris)
    assert outputs.parameters == {
        "count": 7,
        "score": 0.25,
        "ok": True,
        "names": ["a", 1],
        "info": {"k": {"n": 2}},
        "text": "from json",
    }
    assert type(outputs.parameters["count"]) is int
    metrics = outputs.artifacts["metrics"][0]
    assert metrics.metadata == {"accuracy": 0.9}
    assert metrics.uri == "gs://b/metrics"
    assert metrics.schema_title == "system.Metrics"
    assert metrics.id == ""
    model = outputs.artifacts["model"][0]
    assert model.uri == "gs://b/model"
    assert model.metadata == {}


def test_collect_outputs_errors() -> None:
    launch = metrics_launch()
    uris = {"metrics": "m", "model": "m"}
    complete = {"count": "1", "score": "1", "ok": "false", "names": "[]", "info": "{}", "text": ""}
    assert collect_outputs(launch, None, complete, uris).parameters["text"] == ""
    missing = dict(complete)
    del missing["info"]
    with pytest.raises(OutputError, match="did not produce its output parameter 'info'"):
        collect_outputs(launch, None, missing, uris)
    with pytest.raises(OutputError, match="'names' \\(LIST\\)"):
        collect_outputs(launch, None, {**complete, "names": '{"a": 1}'}, uris)
    with pytest.raises(OutputError, match="'count'"):
        collect_outputs(launch, None, {**complete, "count": "1.5"}, uris)


def test_collect_outputs_refuses_a_uri_or_name_no_artifact_row_can_hold() -> None:
    # A step writes its artifacts' URIs; an artifact row keeps one of 2,048 characters
    # (on MySQL a longer one failed the run with an internal error, not the step).
    launch = metrics_launch()
    complete = {"count": "1", "score": "1", "ok": "false", "names": "[]", "info": "{}", "text": ""}
    long_uri = "gs://b/" + "u" * 2042  # 2,049
    written = {"artifacts": {"model": {"artifacts": [{"name": "model", "uri": long_uri}]}}}
    with pytest.raises(
        OutputError, match="output artifact 'model': its URI is 2,049 characters long; at most 2048"
    ):
        collect_outputs(launch, written, complete, {"metrics": "m", "model": "m"})
    written["artifacts"]["model"]["artifacts"][0]["uri"] = long_uri[:-1]
    assert (
        len(
            collect_outputs(launch, written, complete, {"metrics": "m", "model": "m"})
            .artifacts["model"][0]
            .uri
        )
        == 2048
    )


def test_an_importer_refuses_a_runtime_uri_no_artifact_row_can_hold() -> None:
    spec = load_spec("pipeline_with_dynamic_importer_metadata.yaml")
    plan = ActiveExecution(spec, RunContext(run_id="r"), []).plan()
    launch = next(launch for launch in plan.launches if launch.task_name == "importer")
    params = dict(launch.input_parameters)
    params["uri"] = "gs://b/" + "u" * 2042
    with pytest.raises(OutputError, match="the imported artifact: its URI is 2,049 characters long"):
        resolve_importer(replace(launch, input_parameters=params))


@pytest.mark.parametrize(
    ("text", "ptype", "expected"),
    [
        ("hello\n", "STRING", "hello\n"),
        (" 42\n", "NUMBER_INTEGER", 42),
        ("2.5", "NUMBER_DOUBLE", 2.5),
        ("1", "BOOLEAN", True),
        ("F", "BOOLEAN", False),
        ("[1, 2]", "LIST", [1, 2]),
        ('{"a": null}', "STRUCT", {"a": None}),
    ],
)
def test_parse_parameter_text(text: str, ptype: str, expected: Any) -> None:
    value = parse_parameter_text(text, ptype)
    assert value == expected
    assert type(value) is type(expected)


def test_importer_with_constant_uri() -> None:
    launch = _launch("pipeline_with_importer.yaml")
    assert launch.kind == NodeKind.IMPORTER
    imported = resolve_importer(launch)
    (name,) = imported.outputs.artifacts
    ref = imported.outputs.artifacts[name][0]
    assert ref.uri == "gs://ml-pipeline-playground/shakespeare1.txt"
    assert ref.schema_title == "system.Dataset"
    assert imported.reimport is False


def test_importer_with_runtime_uri_and_dynamic_metadata() -> None:
    spec = load_spec("pipeline_with_dynamic_importer_metadata.yaml")
    plan = ActiveExecution(spec, RunContext(run_id="r"), []).plan()
    launch = next(launch for launch in plan.launches if launch.task_name == "importer")
    imported = resolve_importer(launch)
    ref = imported.outputs.artifacts["artifact"][0]
    params = launch.input_parameters
    assert ref.uri == params["uri"]
    assert ref.metadata["name"] == [params["metadata"], "alias-name"]
    assert ref.metadata["containerSpec"] == {"imageUri": params["metadata-2"]}
    assert "{{" not in json.dumps(ref.metadata)
