"""Command rendering: every KFP placeholder, structured ones nested, values printed like Go."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apps.engine.execution import ActiveExecution
from apps.engine.executor_io import build_executor_input, default_parameter_files
from apps.engine.model import RunContext
from apps.engine.placeholders import (
    PlaceholderContext,
    local_path_for_uri,
    render_args,
    render_command,
    render_string,
)
from apps.engine.spec import ContainerSpec
from tests.engine.corpus import load_spec

EXECUTOR_INPUT: dict[str, Any] = {
    "inputs": {
        "parameterValues": {
            "text": "hello world",
            "count": 3,
            "ratio": 2.5,
            "whole": 3.0,
            "flag": True,
            "items": [1, 2.5, "a<b"],
            "config": {"b": 1, "a": [True, None]},
            "big": 1e21,
        },
        "artifacts": {
            "data": {
                "artifacts": [
                    {
                        "name": "17",
                        "type": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
                        "uri": "gs://bucket/run/data",
                        "metadata": {"rows": 10, "source": "csv"},
                    }
                ]
            }
        },
    },
    "outputs": {
        "parameters": {"result": {"outputFile": "/tmp/kfp/outputs/result"}},
        "artifacts": {
            "model": {
                "artifacts": [
                    {
                        "name": "model",
                        "type": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"},
                        "uri": "s3://bucket/run/model",
                        "metadata": {},
                    }
                ]
            }
        },
        "outputFile": "/tmp/kfp_outputs/output_metadata.json",
    },
}


def render(*args: str, context: PlaceholderContext | None = None) -> list[str]:
    return render_args(list(args), EXECUTOR_INPUT, context)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("text", "hello world"),
        ("count", "3"),
        ("ratio", "2.5"),
        ("whole", "3"),  # FormatFloat(-1): a whole float prints without ".0"
        ("flag", "true"),
        ("items", '[1,2.5,"a\\u003cb"]'),  # Go's json.Marshal: compact, HTML-escaped
        ("config", '{"a":[true,null],"b":1}'),  # sorted keys
        ("big", "1000000000000000000000"),  # 'f' format, never an exponent
    ],
)
def test_input_parameter_values_render_like_kfp(name: str, expected: str) -> None:
    assert render(f"{{{{$.inputs.parameters['{name}']}}}}") == [expected]


def test_artifact_and_output_placeholders() -> None:
    assert render(
        "{{$.inputs.artifacts['data'].uri}}",
        "{{$.inputs.artifacts['data'].path}}",
        "{{$.inputs.artifacts['data'].metadata}}",
        "{{$.inputs.artifacts['data'].metadata['rows']}}",
        "{{$.outputs.artifacts['model'].uri}}",
        "{{$.outputs.artifacts['model'].path}}",
        "{{$.outputs.parameters['result'].output_file}}",
        "{{$.outputs.output_file}}",
        "{{$.outputMetadataUri}}",
    ) == [
        "gs://bucket/run/data",
        "/gcs/bucket/run/data",
        '{"rows":10,"source":"csv"}',
        "10",
        "s3://bucket/run/model",
        "/s3/bucket/run/model",
        "/tmp/kfp/outputs/result",
        "/tmp/kfp_outputs/output_metadata.json",
        "/tmp/kfp_outputs/output_metadata.json",
    ]
    whole = json.loads(render("{{$.inputs.artifacts['data']}}")[0])
    assert whole[0]["uri"] == "gs://bucket/run/data"


def test_whole_executor_input_placeholder_is_its_json() -> None:
    (arg,) = render("{{$}}")
    assert json.loads(arg) == EXECUTOR_INPUT
    assert render("--executor_input", "{{$}}")[0] == "--executor_input"


def test_run_context_placeholders() -> None:
    context = PlaceholderContext(
        pipeline_job_name="my run",
        pipeline_job_resource_name="wf-123",
        pipeline_job_uuid="uuid-1",
        pipeline_task_name="train",
        pipeline_task_uuid="42",
        pipeline_root="gs://root",
        pipeline_job_create_time_utc="2024-01-01T00:00:00Z",
        pipeline_job_schedule_time_utc="2024-01-01T00:00:01Z",
    )
    assert render(
        "{{$.pipeline_job_name}}|{{$.pipeline_job_resource_name}}|{{$.pipeline_job_uuid}}",
        "{{$.pipeline_task_name}}/{{$.pipeline_task_uuid}}",
        "{{$.pipeline_root}}",
        "{{$.pipeline_job_create_time_utc}} {{$.pipeline_job_schedule_time_utc}}",
        "{{$.workspace_path}}/x",
        context=context,
    ) == [
        "my run|wf-123|uuid-1",
        "train/42",
        "gs://root",
        "2024-01-01T00:00:00Z 2024-01-01T00:00:01Z",
        "/kfp-workspace/x",
    ]


def test_placeholders_embedded_in_longer_strings() -> None:
    assert render("prefix-{{$.inputs.parameters['text']}}-{{$.inputs.parameters['count']}}.txt") == [
        "prefix-hello world-3.txt"
    ]
    assert render("{{$.outputs.artifacts['model'].uri}}/0") == ["s3://bucket/run/model/0"]


def test_unknown_or_absent_placeholders_are_left_verbatim() -> None:
    # KFP's launcher only replaces placeholders it has a value for.
    assert render("{{$.inputs.parameters['absent']}}", "{{$.nothing}}") == [
        "{{$.inputs.parameters['absent']}}",
        "{{$.nothing}}",
    ]


def test_concat_and_if_present_nest() -> None:
    nested = json.dumps(
        {
            "IfPresent": {
                "InputName": "text",
                "Then": [
                    "--text",
                    {
                        "Concat": [
                            "<",
                            "{{$.inputs.parameters['text']}}",
                            ">",
                            {"Concat": ["#", "{{$.inputs.parameters['count']}}"]},
                        ]
                    },
                    {"IfPresent": {"InputName": "absent", "Then": ["--absent"], "Else": ["--no-absent"]}},
                ],
                "Else": ["never"],
            }
        }
    )
    assert render("prog", nested, "end") == ["prog", "--text", "<hello world>#3", "--no-absent", "end"]


def test_if_present_without_else_drops_the_argument() -> None:
    arg = json.dumps(
        {"IfPresent": {"InputName": "absent", "Then": ["--x", "{{$.inputs.parameters['absent']}}"]}}
    )
    assert render("a", arg, "b") == ["a", "b"]
    on_artifact = json.dumps(
        {"IfPresent": {"InputName": "data", "Then": "{{$.inputs.artifacts['data'].uri}}"}}
    )
    assert render(on_artifact) == ["gs://bucket/run/data"]


def test_concat_with_if_present_inside() -> None:
    arg = json.dumps({"Concat": ["a", {"IfPresent": {"InputName": "absent", "Then": ["b"]}}, "c"]})
    assert render(arg) == ["ac"]


def test_json_lookalikes_are_not_structured() -> None:
    assert render('{"key": "{{$.inputs.parameters[\'count\']}}"}') == ['{"key": "3"}']


def test_render_command_is_command_then_args() -> None:
    container = ContainerSpec(image="alpine", command=("echo",), args=("{{$.inputs.parameters['flag']}}",))
    assert render_command(container, EXECUTOR_INPUT) == ["echo", "true"]
    assert render_string("n={{$.inputs.parameters['count']}}", EXECUTOR_INPUT) == "n=3"


def test_local_paths_follow_kfp_mounts() -> None:
    assert local_path_for_uri("gs://b/k") == "/gcs/b/k"
    assert local_path_for_uri("minio://b/k") == "/minio/b/k"
    assert local_path_for_uri("s3://b/k") == "/s3/b/k"
    assert local_path_for_uri("file:///data/x") == "/data/x"
    assert local_path_for_uri("/abs/path") == "/abs/path"
    assert render_args(
        ["{{$.inputs.artifacts['data'].path}}"], EXECUTOR_INPUT, path_for_uri=lambda uri: "/mnt/" + uri[5:]
    ) == ["/mnt/bucket/run/data"]


def _argv(relative: str, params: dict[str, Any] | None = None) -> list[str]:
    spec = load_spec(relative)
    plan = ActiveExecution(spec, RunContext(run_id="r", parameters=params or {}), []).plan()
    launch = plan.launches[0]
    uris = {name: f"gs://b/{name}" for name in launch.output_artifacts}
    executor_input = build_executor_input(launch, uris, default_parameter_files(launch), "/tmp/out.json")
    assert launch.container is not None
    return render_command(launch.container, executor_input, launch.placeholder_context)


def test_corpus_if_placeholder_with_default_and_with_given_value() -> None:
    # optional_input has a default, so it is present: the Then branches are taken.
    assert _argv("container_with_if_placeholder.yaml") == [
        "my_program",
        "default",
        "--dataset",
        "gs://b/dataset",
        "--output_path",
        "/tmp/kfp/outputs/output_path",
    ]
    assert _argv("container_with_if_placeholder.yaml", {"optional_input": "given"})[1] == "given"


def test_corpus_if_placeholder_with_absent_optional_inputs() -> None:
    assert _argv("essential/placeholder_with_if_placeholder_none_input_value.yaml") == [
        "echo",
        "--arg0",
        "input0",
        "--arg2",
        "default value",
    ]


def test_corpus_concat_and_fstring() -> None:
    argv = _argv("pipeline_with_concat_placeholder.yaml")
    assert argv[-1] == "one+two=three"
    assert _argv("container_with_placeholder_in_fstring.yaml") == [
        "my_program",
        "prefix-text!",
        "gs://b/output_artifact/0",
    ]
