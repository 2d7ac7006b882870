"""ExperimentService and RunService at the HTTP level (no worker: runs stay where
the test puts them)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from django.conf import settings
from rest_framework.test import APIClient

from apps.artifacts.models import Artifact
from apps.core.choices import RecurringRunMode, RecurringRunStatus, RuntimeState, StorageState, TaskKind
from apps.experiments.models import Experiment
from apps.runs.models import Run
from tests.api.conftest import API
from tests.factories import (
    HELLO_IR_TEXT,
    ExperimentFactory,
    PipelineVersionFactory,
    RecurringRunFactory,
    RunFactory,
    TaskFactory,
)

pytestmark = pytest.mark.django_db

HELLO_SPEC = yaml.safe_load(HELLO_IR_TEXT)
PARAM_SPEC = {
    **HELLO_SPEC,
    "root": {
        **HELLO_SPEC["root"],
        "inputDefinitions": {"parameters": {"count": {"parameterType": "NUMBER_INTEGER", "defaultValue": 1}}},
    },
}


# --- Experiments --------------------------------------------------------------------------


def test_experiment_create_get_list(api: APIClient) -> None:
    response = api.post(f"{API}/experiments", {"display_name": "exp", "description": "d"}, format="json")
    assert response.status_code == 200
    created = response.json()
    assert created["display_name"] == "exp" and created["storage_state"] == "AVAILABLE"
    assert created["namespace"] == "default" and "last_run_created_at" not in created
    assert api.get(f"{API}/experiments/{created['experiment_id']}").json() == created
    listed = api.get(f"{API}/experiments", {"namespace": "default"}).json()
    assert [e["experiment_id"] for e in listed["experiments"]] == [created["experiment_id"]]


def test_experiment_create_errors(api: APIClient) -> None:
    api.post(f"{API}/experiments", {"display_name": "exp"}, format="json")
    duplicate = api.post(f"{API}/experiments", {"display_name": "exp"}, format="json")
    assert duplicate.status_code == 409 and duplicate.json()["code"] == 6
    missing = api.post(f"{API}/experiments", {"description": "no name"}, format="json")
    assert missing.status_code == 400 and "display_name" in missing.json()["message"]
    wrong_type = api.post(f"{API}/experiments", {"display_name": ["x"]}, format="json")
    assert wrong_type.status_code == 400
    assert api.post(f"{API}/experiments", [1], format="json").status_code == 400
    unknown_ns = api.post(f"{API}/experiments", {"display_name": "e", "namespace": "nope"}, format="json")
    assert unknown_ns.status_code == 404


def test_experiment_archive_cascades_to_runs_and_recurring_runs(api: APIClient) -> None:
    experiment = ExperimentFactory()
    runs = RunFactory.create_batch(2, experiment=experiment, state=RuntimeState.SUCCEEDED)
    recurring = RecurringRunFactory(experiment=experiment)
    assert api.post(f"{API}/experiments/{experiment.pk}:archive").json() == {}
    assert api.get(f"{API}/experiments/{experiment.pk}").json()["storage_state"] == "ARCHIVED"
    for run in runs:
        assert api.get(f"{API}/runs/{run.pk}").json()["storage_state"] == "ARCHIVED"
    recurring.refresh_from_db()
    assert (recurring.mode, recurring.status) == (RecurringRunMode.DISABLE, RecurringRunStatus.DISABLED)
    assert api.post(f"{API}/experiments/{experiment.pk}:unarchive").json() == {}
    assert Experiment.objects.get(pk=experiment.pk).storage_state == StorageState.AVAILABLE
    # Runs stay archived until restored one by one, as in KFP.
    assert Run.objects.get(pk=runs[0].pk).storage_state == StorageState.ARCHIVED


def test_experiment_delete(api: APIClient) -> None:
    empty = ExperimentFactory()
    assert api.delete(f"{API}/experiments/{empty.pk}").json() == {}
    assert api.get(f"{API}/experiments/{empty.pk}").status_code == 404
    busy = RunFactory().experiment
    refused = api.delete(f"{API}/experiments/{busy.pk}")
    assert refused.status_code == 400 and "runs" in refused.json()["message"]
    default = ExperimentFactory(display_name="Default")
    assert api.delete(f"{API}/experiments/{default.pk}").status_code == 400


# --- Runs ---------------------------------------------------------------------------------


def test_create_run_from_an_inline_spec(api: APIClient) -> None:
    root = f"{settings.CANAL_PIPELINE_ROOT}/custom"  # a directory inside the configured root
    body = {
        "display_name": "inline",
        "description": "d",
        "pipeline_spec": PARAM_SPEC,
        "runtime_config": {"parameters": {"count": "3"}, "pipeline_root": root},
        "service_account": "sa",
    }
    response = api.post(f"{API}/runs", body, format="json")
    assert response.status_code == 200, response.content
    run = response.json()
    assert run["state"] == "PENDING" and run["storage_state"] == "AVAILABLE"
    assert run["runtime_config"] == {"parameters": {"count": 3}, "pipeline_root": root}
    assert run["pipeline_spec"] == PARAM_SPEC and "pipeline_version_reference" not in run
    assert run["service_account"] == "sa"
    # No experiment given: the namespace's Default experiment.
    assert Experiment.objects.get(pk=run["experiment_id"]).display_name == "Default"


def test_create_run_from_an_inline_argo_workflow(api: APIClient) -> None:
    """KFP's CreateRun takes a v1 Argo Workflow in ``pipeline_spec`` too (its backend tells
    the two apart by the document); the run is an Argo run, and a bad one is a 400."""
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hello-"},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "who", "value": "world"}]},
            "templates": [
                {
                    "name": "main",
                    "container": {"image": "alpine:3", "command": ["echo", "{{workflow.parameters.who}}"]},
                }
            ],
        },
    }
    body = {
        "display_name": "argo",
        "pipeline_spec": workflow,
        "runtime_config": {"parameters": {"who": "you"}},
    }
    response = api.post(f"{API}/runs", body, format="json")
    assert response.status_code == 200, response.content
    run = Run.objects.get(pk=response.json()["run_id"])
    assert (run.spec_format, run.pipeline_name, run.runtime_parameters) == ("argo", "hello", {"who": "you"})
    assert api.get(f"{API}/runs/{run.pk}").json()["pipeline_spec"] == workflow
    typo = {**workflow, "spec": {**workflow["spec"], "entrypont": "main"}}
    refused = api.post(f"{API}/runs", {**body, "pipeline_spec": typo}, format="json")
    assert refused.status_code == 400
    assert "entrypont" in refused.json()["message"]
    assert Run.objects.count() == 1


def test_a_pipeline_name_too_long_to_keep_is_a_400_naming_it(api: APIClient) -> None:
    """A run keeps its pipeline's name (255 characters): a longer one was a database
    error (500) on MariaDB; it is refused by the importer, naming the field."""
    spec = {**HELLO_SPEC, "pipelineInfo": {**HELLO_SPEC["pipelineInfo"], "name": "p" * 300}}
    response = api.post(f"{API}/runs", {"display_name": "long", "pipeline_spec": spec}, format="json")
    assert response.status_code == 400, response.content
    assert "pipelineInfo.name is 300 characters long" in response.json()["message"]
    assert not Run.objects.exists()


def test_create_run_from_a_wrapped_spec_with_platform_spec(api: APIClient) -> None:
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {}}}}}
    body = {
        "display_name": "wrapped",
        "pipeline_spec": {"pipeline_spec": HELLO_SPEC, "platform_spec": platform},
    }
    run = api.post(f"{API}/runs", body, format="json").json()
    assert Run.objects.get(pk=run["run_id"]).platform_spec == platform
    assert api.get(f"{API}/runs/{run['run_id']}").json()["pipeline_spec"] == body["pipeline_spec"]


def test_create_run_from_a_version_reference(api: APIClient) -> None:
    experiment = ExperimentFactory()
    old = PipelineVersionFactory()
    new = PipelineVersionFactory(pipeline=old.pipeline)
    by_version = {
        "display_name": "v",
        "experiment_id": str(experiment.pk),
        "pipeline_version_reference": {
            "pipeline_id": str(old.pipeline_id),
            "pipeline_version_id": str(old.pk),
        },
    }
    run = api.post(f"{API}/runs", by_version, format="json").json()
    assert run["pipeline_version_reference"]["pipeline_version_id"] == str(old.pk)
    assert run["experiment_id"] == str(experiment.pk) and "pipeline_spec" not in run
    latest = {"display_name": "latest", "pipeline_version_reference": {"pipeline_id": str(old.pipeline_id)}}
    run = api.post(f"{API}/runs", latest, format="json").json()
    assert run["pipeline_version_reference"]["pipeline_version_id"] == str(new.pk)
    legacy = {"display_name": "legacy", "pipeline_version_id": str(old.pk)}
    assert api.post(f"{API}/runs", legacy, format="json").status_code == 200
    query = api.post(
        f"{API}/runs?experiment_id={experiment.pk}", {**legacy, "display_name": "q"}, format="json"
    )
    assert query.json()["experiment_id"] == str(experiment.pk)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"display_name": "x"}, 400, "exactly one of"),
        ({"display_name": "x", "pipeline_spec": HELLO_SPEC, "pipeline_version_id": "a"}, 400, "exactly one"),
        ({"pipeline_spec": HELLO_SPEC}, 400, "display_name is required"),
        ({"display_name": "x", "pipeline_spec": {"pipelineInfo": 5}}, 400, ""),
        ({"display_name": "x", "pipeline_spec": [1, 2]}, 400, "must be a JSON object"),
        (
            {
                "display_name": "x",
                "pipeline_spec": PARAM_SPEC,
                "runtime_config": {"parameters": {"count": "x"}},
            },
            400,
            "count",
        ),
        (
            {"display_name": "x", "pipeline_spec": HELLO_SPEC, "runtime_config": {"parameters": {"nope": 1}}},
            400,
            "nope",
        ),
        (
            {"display_name": "x", "pipeline_spec": HELLO_SPEC, "runtime_config": {"pipeline_root": "rel"}},
            400,
            "pipeline_root",
        ),
        ({"display_name": "x", "pipeline_spec": HELLO_SPEC, "runtime_config": []}, 400, "JSON object"),
        ({"display_name": "x", "pipeline_version_reference": {}}, 400, "pipeline_id"),
        ({"display_name": "x", "pipeline_version_reference": {"pipeline_id": "nope"}}, 404, "not found"),
        ({"display_name": "x", "experiment_id": "nope", "pipeline_spec": HELLO_SPEC}, 404, "not found"),
    ],
)
def test_create_run_errors(api: APIClient, body: dict[str, Any], status: int, message: str) -> None:
    response = api.post(f"{API}/runs", body, format="json")
    assert response.status_code == status, response.content
    assert message in response.json()["message"]
    assert not Run.objects.exists()


def test_create_run_in_an_archived_experiment_is_refused(api: APIClient) -> None:
    experiment = ExperimentFactory(storage_state=StorageState.ARCHIVED)
    body = {"display_name": "x", "experiment_id": str(experiment.pk), "pipeline_spec": HELLO_SPEC}
    response = api.post(f"{API}/runs", body, format="json")
    assert response.status_code == 400 and "archived" in response.json()["message"]


def test_get_run_has_task_details(api: APIClient, run_with_tasks: Any) -> None:
    data = run_with_tasks
    body = api.get(f"{API}/runs/{data.run.pk}").json()
    tasks = {t["display_name"]: t for t in body["run_details"]["task_details"]}
    assert set(tasks) == {"root", "writer", "reader"}
    writer, reader, root = tasks["writer"], tasks["reader"], tasks["root"]
    assert writer["outputs"] == {"out": {"artifact_ids": [str(data.artifact.pk)]}}
    assert reader["inputs"] == {"data": {"artifact_ids": [str(data.artifact.pk)]}}
    assert writer["parent_task_id"] == root["task_id"] and "parent_task_id" not in root
    assert {c["task_id"] for c in root["child_tasks"]} == {writer["task_id"], reader["task_id"]}
    assert writer["state"] == "SUCCEEDED" and writer["run_id"] == str(data.run.pk)
    # Lists leave the details (and the spec) out.
    [listed] = api.get(f"{API}/runs").json()["runs"]
    assert "run_details" not in listed and "pipeline_spec" not in listed


def test_terminate_retry_archive_unarchive_delete(api: APIClient) -> None:
    run = RunFactory(state=RuntimeState.RUNNING)
    root = TaskFactory(run=run, key="root", name="root", kind=TaskKind.ROOT, state=RuntimeState.RUNNING)
    assert api.post(f"{API}/runs/{run.pk}:terminate").json() == {}
    assert api.get(f"{API}/runs/{run.pk}").json()["state"] == "CANCELING"
    refused = api.delete(f"{API}/runs/{run.pk}")
    assert refused.status_code == 400 and "terminate it" in refused.json()["message"]
    Run.objects.filter(pk=run.pk).update(state=RuntimeState.FAILED)
    root.state = RuntimeState.FAILED
    root.save()
    again = api.post(f"{API}/runs/{run.pk}:terminate")
    assert again.status_code == 400 and again.json()["code"] == 9
    assert api.post(f"{API}/runs/{run.pk}:retry").json() == {}
    assert Run.objects.get(pk=run.pk).state == RuntimeState.RUNNING
    assert api.post(f"{API}/runs/{run.pk}:retry").status_code == 400
    assert api.post(f"{API}/runs/{run.pk}:archive").json() == {}
    assert api.get(f"{API}/runs/{run.pk}").json()["storage_state"] == "ARCHIVED"
    assert api.post(f"{API}/runs/{run.pk}:unarchive").json() == {}
    assert api.get(f"{API}/runs/{run.pk}").json()["storage_state"] == "AVAILABLE"
    Run.objects.filter(pk=run.pk).update(state=RuntimeState.SUCCEEDED)
    assert api.delete(f"{API}/runs/{run.pk}").json() == {}
    assert api.get(f"{API}/runs/{run.pk}").status_code == 404
    assert api.post(f"{API}/runs/{run.pk}:explode").status_code == 404


def test_retry_of_a_run_that_never_planned_a_step_is_400(api: APIClient) -> None:
    run = RunFactory(state=RuntimeState.FAILED)  # no task rows at all
    response = api.post(f"{API}/runs/{run.pk}:retry")
    assert response.status_code == 400 and "cannot be retried" in response.json()["message"]
    assert Run.objects.get(pk=run.pk).state == RuntimeState.FAILED


def test_list_runs_of_an_experiment(api: APIClient) -> None:
    mine, other = ExperimentFactory(), ExperimentFactory()
    wanted = RunFactory.create_batch(2, experiment=mine)
    RunFactory(experiment=other)
    listed = api.get(f"{API}/runs", {"experiment_id": str(mine.pk), "sort_by": "created_at"}).json()
    assert [r["run_id"] for r in listed["runs"]] == [str(r.pk) for r in wanted]
    assert api.get(f"{API}/runs", {"experiment_id": "junk"}).status_code == 404


def test_read_artifact(api: APIClient, run_with_tasks: Any) -> None:
    data = run_with_tasks
    base = f"{API}/runs/{data.run.pk}/nodes"
    for node in ("writer", str(data.writer.pk)):
        response = api.get(f"{base}/{node}/artifacts/out:read")
        assert response.status_code == 200, response.content
        assert base64.b64decode(response.json()["data"]) == b"artifact bytes"
    assert api.get(f"{base}/writer/artifacts/missing:read").status_code == 404
    assert api.get(f"{base}/nobody/artifacts/out:read").status_code == 404
    data.artifact.delete()  # the row is gone: the reference no longer resolves
    assert api.get(f"{base}/writer/artifacts/out:read").status_code == 404


def test_read_artifact_outside_the_artifact_root_is_refused(api: APIClient, run_with_tasks: Any) -> None:
    # An importer (or a hand-edited spec) can name any path as an artifact URI; Canal
    # must not serve it: reads are confined to storage the run's namespace owns.
    data = run_with_tasks
    Artifact.objects.filter(pk=data.artifact.pk).update(uri="/etc/passwd")
    response = api.get(f"{API}/runs/{data.run.pk}/nodes/writer/artifacts/out:read")
    assert response.status_code == 404
    assert "root:" not in response.content.decode()


def test_read_task_log(api: APIClient, run_with_tasks: Any) -> None:
    data = run_with_tasks
    url = f"{API}/runs/{data.run.pk}/nodes/writer/log"
    response = api.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"line one\nline two\n"
    assert response["X-Log-Next-Offset"] == response["X-Log-Size"] == "18"
    tail = api.get(url, {"offset": 9, "limit": 4})
    assert tail.content == b"line" and tail["X-Log-Next-Offset"] == "13"
    assert api.get(url, {"offset": "-1"}).status_code == 400
    no_log = api.get(f"{API}/runs/{data.run.pk}/nodes/reader/log")
    assert no_log.status_code == 404 and no_log.json()["code"] == 5
