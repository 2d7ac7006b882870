"""kfp-kubernetes' podMetadata and fieldPathAsEnv on the local executor: a step's pod fields
become its environment variables, resolved as the kubelet would."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from apps.backends.local.launcher import LaunchError, prepare_step, step_pod_name
from apps.backends.pod_fields import (
    FieldPathError,
    PodMetadata,
    field_value,
    platform_pod_env,
    platform_pod_metadata,
)
from apps.engine.execution import ActiveExecution
from apps.engine.model import RunContext, StepLaunch
from apps.storage import StoreConfig
from tests.engine.corpus import load_spec
from tests.paths import KFP_VALID, missing

POD = PodMetadata(
    name="pipe-step-1",
    namespace="team-a",
    labels={"task-label": "l", "app.kubernetes.io/name": "canal"},
    annotations={"note": "a b"},
)
POD_METADATA = "critical/pipeline_with_pod_metadata.yaml"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "pipe-step-1"),
        ("metadata.namespace", "team-a"),
        ("metadata.labels['task-label']", "l"),
        ("metadata.labels['app.kubernetes.io/name']", "canal"),
        ("metadata.annotations['note']", "a b"),
        # As on Kubernetes: a label or annotation the pod lacks is the empty string.
        ("metadata.labels['absent']", ""),
        ("metadata.annotations['task-label']", ""),
    ],
)
def test_field_values(path: str, value: str) -> None:
    assert field_value(path, POD) == value


@pytest.mark.parametrize(
    "path",
    ["spec.nodeName", "status.podIP", "metadata.uid", "metadata.labels", "metadata.labels[task-label]", ""],
)
def test_fields_a_local_step_has_no_value_for_are_refused_by_name(path: str) -> None:
    with pytest.raises(FieldPathError, match="has no value outside a Kubernetes pod") as caught:
        field_value(path, POD)
    assert repr(path) in str(caught.value)


def test_platform_env_names_the_entry_it_refuses() -> None:
    config = {
        "fieldPathAsEnv": [
            {"name": "POD_NAME", "fieldPath": "metadata.name"},
            {"name": "NODE", "fieldPath": "spec.nodeName"},
        ]
    }
    with pytest.raises(FieldPathError, match=r"fieldPathAsEnv\[1\] \(NODE\): field path 'spec.nodeName'"):
        platform_pod_env(config, POD)
    for bad, message in [
        ({"fieldPathAsEnv": {"name": "X"}}, "fieldPathAsEnv must be a list"),
        ({"fieldPathAsEnv": [{"name": "A=B", "fieldPath": "metadata.name"}]}, "not an environment variable"),
        ({"fieldPathAsEnv": [{"name": "X"}]}, r"fieldPathAsEnv\[0\] \(X\) has no fieldPath"),
    ]:
        with pytest.raises(FieldPathError, match=message):
            platform_pod_env(bad, POD)
    with pytest.raises(FieldPathError, match=r"podMetadata\.labels: 'n' must map a text key to a text value"):
        platform_pod_metadata({"podMetadata": {"labels": {"n": 1}}}, name="p", namespace="n")


def test_pod_metadata_reads_labels_and_annotations() -> None:
    pod = platform_pod_metadata(
        {"podMetadata": {"labels": {"a": "1"}, "annotations": {"b": "2"}}}, name="p", namespace="ns"
    )
    assert pod == PodMetadata(name="p", namespace="ns", labels={"a": "1"}, annotations={"b": "2"})
    assert platform_pod_metadata({}, name="p", namespace="ns") == PodMetadata(name="p", namespace="ns")


def test_step_pod_name_is_a_dns_name() -> None:
    name = step_pod_name("My Pipeline_v2", "validate-pod-metadata-task-a", "1F2e-3")
    assert name == "my-pipeline-v2-validate-pod-metadata-task-a-1f2e-3"
    assert step_pod_name("", "t", "u") == "pipeline-t-u"


# --- the corpus pipeline, prepared as the worker prepares its steps --------------------------


def _launches() -> dict[str, StepLaunch]:
    if not (KFP_VALID / POD_METADATA).is_file():
        pytest.skip(missing(KFP_VALID / POD_METADATA))
    plan = ActiveExecution(load_spec(POD_METADATA), RunContext(run_id="r"), []).plan()
    return {launch.task_name: launch for launch in plan.launches}


def _prepare(launch: StepLaunch, tmp_path: Path) -> Any:
    return prepare_step(
        launch,
        task_id="0b7c5f0e-aaaa-4bbb-8ccc-123456789abc",
        attempt=1,
        step_dir=tmp_path / launch.task_name,
        log_path=tmp_path / "log",
        store_config=StoreConfig(),
        tenant="team-a",
        base_env={"KFP_RUNNER": "canal"},
        pipeline_name="pipeline-with-pod-metadata",
    )


def test_corpus_steps_see_their_pod_labels_and_annotations(tmp_path: Path) -> None:
    launches = _launches()
    env = {name: _prepare(launch, tmp_path).spec.env for name, launch in launches.items()}
    assert {k: v for k, v in env["validate-pod-metadata-task-a"].items() if k.startswith("POD_")} == {
        "POD_TASK_ANNOTATION": "annotation",
        "POD_TASK_LABEL_1": "label-1",
        "POD_TASK_LABEL_2": "label-2",
    }
    assert env["validate-pod-metadata-task-b"]["POD_TASK_ANNOTATION_4"] == "annotation-4"
    assert env["validate-pod-metadata-task-b"]["POD_TASK_LABEL_3"] == "label-3"
    assert env["validate-pod-metadata-task-c"]["POD_TASK_ANNOTATION_2"] == "annotation-2"
    assert env["validate-pod-metadata-task-d"]["POD_TASK_LABEL_1"] == "label-1"
    # The step with no podMetadata: its variables exist and are empty, as on a cluster.
    no_metadata = env["validate-no-pod-metadata"]
    assert [no_metadata[k] for k in ("POD_TASK_ANNOTATION", "POD_TASK_ANNOTATION_1", "POD_TASK_LABEL")] == [
        "",
        "",
        "",
    ]
    assert env["validate-pod-metadata-task-a"]["KFP_RUNNER"] == "canal"


def test_name_and_namespace_are_the_steps_pod_and_canal_namespace(tmp_path: Path) -> None:
    launch = _launches()["validate-pod-metadata-task-a"]
    config = {
        **launch.platform_config,
        "fieldPathAsEnv": [
            {"name": "POD_NAME", "fieldPath": "metadata.name"},
            {"name": "POD_NAMESPACE", "fieldPath": "metadata.namespace"},
        ],
    }
    env = _prepare(replace(launch, platform_config=config), tmp_path).spec.env
    assert env["POD_NAME"] == (
        "pipeline-with-pod-metadata-validate-pod-metadata-task-a-0b7c5f0e-aaaa-4bbb-8ccc-123456789abc"
    )
    assert env["POD_NAMESPACE"] == "team-a"


def test_an_unknown_field_path_refuses_the_step_before_staging(tmp_path: Path) -> None:
    launch = _launches()["validate-pod-metadata-task-a"]
    config = {**launch.platform_config, "fieldPathAsEnv": [{"name": "NODE", "fieldPath": "spec.nodeName"}]}
    with pytest.raises(LaunchError) as caught:
        _prepare(replace(launch, platform_config=config), tmp_path)
    message = str(caught.value)
    assert "'validate-pod-metadata-task-a'" in message and "'spec.nodeName'" in message
    assert "fieldPathAsEnv[0] (NODE)" in message
    assert not (tmp_path / launch.task_name).exists()
