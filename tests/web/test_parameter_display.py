"""Parameter types read the same on every page ("integer", never NUMBER_INTEGER), a
List[int] default the SDK wrote as [1.0, 2.0] reads [1, 2] (as KFP passes it to the
step), and the pipeline preview's node panel gets readable fields, not raw JSON."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import yaml

from apps.core.choices import RuntimeState
from apps.engine.runtime_params import tidy_numbers, type_label
from apps.pipelines.selectors import readable_node_detail
from tests.factories import PipelineVersionFactory, RunFactory

IR = """\
components:
  comp-train:
    executorLabel: exec-train
    inputDefinitions:
      parameters:
        epochs: {parameterType: NUMBER_INTEGER}
        sizes: {parameterType: LIST}
    outputDefinitions:
      artifacts:
        model: {artifactType: {schemaTitle: system.Model, schemaVersion: 0.0.1}}
      parameters:
        score: {parameterType: NUMBER_DOUBLE}
deploymentSpec:
  executors:
    exec-train:
      container: {image: python:3.11, command: [python, -c], args: ["print(1)\\nprint(2)"]}
pipelineInfo: {name: vocab}
root:
  dag:
    tasks:
      train:
        componentRef: {name: comp-train}
        inputs:
          parameters:
            epochs: {componentInputParameter: epochs}
            sizes: {componentInputParameter: sizes}
        taskInfo: {name: train}
        retryPolicy: {maxRetryCount: 2}
  inputDefinitions:
    parameters:
      epochs: {parameterType: NUMBER_INTEGER, defaultValue: 3.0, isOptional: true}
      sizes: {parameterType: LIST, defaultValue: [1.0, 2.0, 2.5], isOptional: true}
schemaVersion: 2.1.0
sdkVersion: kfp-2.14.6
"""


def _version():  # type: ignore[no-untyped-def]
    return PipelineVersionFactory(
        source=IR, pipeline_spec=yaml.safe_load(IR), content_hash=hashlib.sha256(IR.encode()).hexdigest()
    )


def test_type_labels_and_tidy_numbers() -> None:
    assert [
        type_label(t) for t in ("NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN", "STRING", "LIST", "STRUCT")
    ] == [
        "integer",
        "float",
        "boolean",
        "string",
        "list",
        "struct",
    ]
    assert type_label("") == "" and type_label("SOMETHING_NEW") == "something_new"
    assert tidy_numbers([1.0, 2.0, 2.5, True, {"k": [3.0]}]) == [1, 2, 2.5, True, {"k": [3]}]
    assert json.dumps(tidy_numbers([1.0, 2.0])) == "[1, 2]"


def test_node_detail_is_readable() -> None:
    rows = readable_node_detail(
        {
            "task": "train",
            "component": "comp-train",
            "inputs": {
                "parameters": {"epochs": {"type": "NUMBER_INTEGER", "from": "input epochs"}},
                "artifacts": {"data": {"type": "system.Dataset", "from": "prep.out"}},
            },
            "outputs": {"parameters": {"score": "NUMBER_DOUBLE"}, "artifacts": {"model": "system.Model"}},
            "retry": {"max_retry_count": 2, "backoff_duration": "1s", "backoff_factor": 2.0},
            "caching": True,
            "image": "python:3.11",
            "command": ["python", "-c"],
            "args": ["print(1)"],
            "env": {"A": "b"},
        }
    )
    assert list(rows) == ["Image", "Command", "Inputs", "Outputs", "Retries", "Caching", "Environment"]
    assert rows["Command"] == "python\n-c\nprint(1)"
    assert rows["Inputs"] == ["epochs: integer ← input epochs", "data: system.Dataset ← prep.out"]
    assert rows["Outputs"] == ["score: float", "model: system.Model"]
    assert rows["Retries"] == "up to 2 times (backoff 1s, factor 2)"
    assert rows["Caching"] == "on" and rows["Environment"] == ["A: b"]


@pytest.mark.django_db
def test_pipeline_preview_run_form_and_run_page_agree(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = _version()
    html = logged_in.get(f"/pipelines/{version.pipeline_id}/").content.decode()
    nodes_json = re.search(r'<script id="dag-nodes" type="application/json">(.*?)</script>', html, re.S)
    assert nodes_json is not None
    nodes = json.loads(nodes_json.group(1))
    train = next(n for n in nodes.values() if n["label"] == "train")
    assert train["detail"]["Inputs"] == ["epochs: integer ← input epochs", "sizes: list ← input sizes"]
    assert train["detail"]["Outputs"] == ["score: float", "model: system.Model"]
    assert train["detail"]["Image"] == "python:3.11"
    assert "NUMBER_INTEGER" not in nodes_json.group(1)

    form = logged_in.get(f"/runs/new/?version={version.pk}").content.decode()
    assert '<span class="badge badge-type">integer</span>' in form
    assert '<span class="badge badge-type">list</span>' in form
    assert "[\n  1,\n  2,\n  2.5\n]</textarea>" in form and "1.0" not in form

    run = RunFactory(pipeline_version=version, state=RuntimeState.SUCCEEDED, runtime_parameters={"epochs": 4})
    page = logged_in.get(f"/runs/{run.pk}/").content.decode()
    assert ">NUMBER_INTEGER<" not in page  # (the spec tab still shows the YAML as uploaded)
    assert '<td class="muted small">integer</td>' in page
    assert "[1, 2, 2.5]" in page
