"""The real kfp 2.17 client against a live Canal (web + a Celery worker).

Everything here goes through ``kfp.Client`` exactly as a user's script would:
HTTP to pytest-django's live server, bearer token, the worker running the steps.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api
import pytest
import requests

from apps.core.choices import RecurringRunStatus, RuntimeState, StorageState
from apps.core.models import Membership
from apps.core.services import api_token_create
from tests.api.kfp_pipelines import compile_to, hello_pipeline, sleeper_pipeline
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.live,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:This client only works:FutureWarning"),
]

RUN_TIMEOUT = 180


@pytest.fixture
def kfp_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ~/.config/kfp/context.json from the developer's machine leaks in."""
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    for name in ("KF_PIPELINES_DEFAULT_EXPERIMENT_NAME", "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def client_token(transactional_db: Any) -> str:
    # The owner of 'default': the tests delete runs, experiments and recurring runs.
    user = UserFactory(username="kfp-user", namespace__role=Membership.Role.OWNER)
    return api_token_create(actor=user, user=user, name="kfp client")[1]


@pytest.fixture
def client(live_stack: Any, client_token: str, kfp_context: None) -> kfp.Client:
    return kfp.Client(host=live_stack.url, existing_token=client_token)


@pytest.fixture
def hello_yaml(tmp_path: Path) -> Path:
    return compile_to(hello_pipeline, tmp_path / "hello.yaml")


def poll_state(client: kfp.Client, run_id: str, wanted: set[str], timeout: float = RUN_TIMEOUT) -> Any:
    """get_run until the state is one of ``wanted`` (wait_for_run_completion ignores CANCELED)."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.get_run(run_id)
        if run.state in wanted:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} is still {run.state}")
        time.sleep(0.2)


def test_client_uploads_runs_lists_and_manages_runs(
    client: kfp.Client, hello_yaml: Path, live_stack: Any, client_token: str
) -> None:
    # Pipelines and versions.
    pipeline = client.upload_pipeline(str(hello_yaml), pipeline_name="api-hello", description="from kfp")
    assert pipeline.display_name == "api-hello" and pipeline.description == "from kfp"
    assert client.get_pipeline_id("api-hello") == pipeline.pipeline_id
    version = client.upload_pipeline_version(str(hello_yaml), "v2", pipeline_id=pipeline.pipeline_id)
    assert version.pipeline_id == pipeline.pipeline_id and version.display_name == "v2"
    by_name = client.upload_pipeline_version(str(hello_yaml), "v3", pipeline_name="api-hello")
    assert by_name.pipeline_id == pipeline.pipeline_id
    versions = client.list_pipeline_versions(pipeline.pipeline_id, sort_by="created_at desc")
    assert [v.display_name for v in versions.pipeline_versions] == ["v3", "v2", "api-hello"]
    assert client.get_pipeline_version(pipeline.pipeline_id, version.pipeline_version_id).pipeline_spec

    # Experiments: create_experiment is get-or-create.
    experiment = client.create_experiment("api-exp", description="client tests")
    assert client.create_experiment("api-exp").experiment_id == experiment.experiment_id
    assert client.get_experiment(experiment_name="api-exp").experiment_id == experiment.experiment_id

    # A run from the compiled package, with arguments; waited for with the client.
    result = client.create_run_from_pipeline_package(
        str(hello_yaml),
        arguments={"text": "hello from kfp"},
        run_name="from-package",
        experiment_name="api-exp",
    )
    finished = result.wait_for_run_completion(timeout=RUN_TIMEOUT)
    assert finished.state == RuntimeState.SUCCEEDED
    assert finished.runtime_config.parameters == {"text": "hello from kfp"}

    # A run of an uploaded version.
    from_version = client.run_pipeline(
        experiment_id=experiment.experiment_id,
        job_name="from-version",
        pipeline_id=pipeline.pipeline_id,
        version_id=version.pipeline_version_id,
        params={"text": "second"},
    )
    assert from_version.pipeline_version_reference.pipeline_version_id == version.pipeline_version_id
    done = client.wait_for_run_completion(from_version.run_id, timeout=RUN_TIMEOUT)
    assert done.state == RuntimeState.SUCCEEDED

    # get_run shows the task details: states, times, artifacts, the DAG's children.
    detail = client.get_run(result.run_id)
    tasks = {t.display_name: t for t in detail.run_details.task_details}
    writer, shower = tasks["write-text"], tasks["show"]
    for task in (writer, shower):
        assert task.state == RuntimeState.SUCCEEDED
        assert task.start_time and task.end_time and task.create_time
        assert task.run_id == result.run_id
    [artifact_id] = writer.outputs["out"].artifact_ids
    assert shower.inputs["data"].artifact_ids == [artifact_id]
    root = next(t for t in detail.run_details.task_details if not t.parent_task_id)
    assert {c.task_id for c in root.child_tasks} >= {writer.task_id, shower.task_id}
    assert [s.state for s in detail.state_history] == ["PENDING", "RUNNING", "SUCCEEDED"]

    # The artifact's content, through the :read endpoint (not wrapped by the client).
    read = requests.get(
        f"{live_stack.url}/apis/v2beta1/runs/{result.run_id}/nodes/write-text/artifacts/out:read",
        headers={"Authorization": f"Bearer {client_token}"},
        timeout=30,
    )
    assert read.status_code == 200
    assert base64.b64decode(read.json()["data"]) == b"hello from kfp"

    # list_runs with a filter and a sort, across two pages.
    succeeded = json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "state", "stringValue": "SUCCEEDED"}]}
    )
    first = client.list_runs(
        experiment_id=experiment.experiment_id, page_size=1, sort_by="created_at desc", filter=succeeded
    )
    assert first.total_size == 2 and [r.display_name for r in first.runs] == ["from-version"]
    assert first.next_page_token
    second = client.list_runs(
        experiment_id=experiment.experiment_id,
        page_token=first.next_page_token,
        page_size=1,
        sort_by="created_at desc",
        filter=succeeded,
    )
    assert [r.display_name for r in second.runs] == ["from-package"]
    assert not second.next_page_token
    named = json.dumps({"predicates": [{"operation": 9, "key": "display_name", "stringValue": "PACKAGE"}]})
    assert [r.run_id for r in client.list_runs(filter=named).runs] == [result.run_id]

    # Archive, unarchive, delete.
    client.archive_run(result.run_id)
    assert client.get_run(result.run_id).storage_state == StorageState.ARCHIVED
    client.unarchive_run(result.run_id)
    assert client.get_run(result.run_id).storage_state == StorageState.AVAILABLE
    client.delete_run(result.run_id)
    with pytest.raises(kfp_server_api.ApiException) as missing:
        client.get_run(result.run_id)
    assert missing.value.status == 404


def test_client_terminates_a_running_run(client: kfp.Client, tmp_path: Path) -> None:
    package = compile_to(sleeper_pipeline, tmp_path / "sleeper.yaml")
    result = client.create_run_from_pipeline_package(
        str(package), arguments={"seconds": 300}, run_name="sleepy"
    )
    poll_state(client, result.run_id, {RuntimeState.RUNNING})
    # Wait until the step itself runs, so terminating has a process to stop.
    deadline = time.monotonic() + RUN_TIMEOUT
    while not any(
        t.state == RuntimeState.RUNNING and t.display_name == "sleep-for"
        for t in client.get_run(result.run_id).run_details.task_details or []
    ):
        assert time.monotonic() < deadline, "the sleep step never started"
        time.sleep(0.2)
    assert client.terminate_run(result.run_id) == {}
    assert client.get_run(result.run_id).state in (RuntimeState.CANCELING, RuntimeState.CANCELED)
    canceled = poll_state(client, result.run_id, {RuntimeState.CANCELED, RuntimeState.FAILED})
    assert canceled.state == RuntimeState.CANCELED


def test_client_experiment_archive_cascades_and_recurring_runs(client: kfp.Client, hello_yaml: Path) -> None:
    experiment = client.create_experiment("cascade")
    pipeline = client.upload_pipeline(str(hello_yaml), pipeline_name="scheduled")
    [version] = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    run = client.run_pipeline(
        experiment_id=experiment.experiment_id,
        job_name="one-off",
        pipeline_id=pipeline.pipeline_id,
        version_id=version.pipeline_version_id,
    )
    assert client.wait_for_run_completion(run.run_id, timeout=RUN_TIMEOUT).state == RuntimeState.SUCCEEDED

    recurring = client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name="nightly",
        cron_expression="0 0 3 * * *",
        pipeline_id=pipeline.pipeline_id,
        version_id=version.pipeline_version_id,
        params={"text": "scheduled"},
        max_concurrency=2,
    )
    assert recurring.status == RecurringRunStatus.ENABLED
    assert recurring.trigger.cron_schedule.cron == "0 0 3 * * *"
    assert recurring.max_concurrency == "2"
    listed = client.list_recurring_runs(experiment_id=experiment.experiment_id)
    assert [r.recurring_run_id for r in listed.recurring_runs] == [recurring.recurring_run_id]
    client.disable_recurring_run(recurring.recurring_run_id)
    assert client.get_recurring_run(recurring.recurring_run_id).status == RecurringRunStatus.DISABLED
    client.enable_recurring_run(recurring.recurring_run_id)
    assert client.get_recurring_run(recurring.recurring_run_id).status == RecurringRunStatus.ENABLED

    # Archiving the experiment archives its runs and disables its recurring runs.
    client.archive_experiment(experiment.experiment_id)
    assert (
        client.get_experiment(experiment_id=experiment.experiment_id).storage_state == StorageState.ARCHIVED
    )
    assert client.get_run(run.run_id).storage_state == StorageState.ARCHIVED
    assert client.get_recurring_run(recurring.recurring_run_id).status == RecurringRunStatus.DISABLED
    client.unarchive_experiment(experiment.experiment_id)
    assert (
        client.get_experiment(experiment_id=experiment.experiment_id).storage_state == StorageState.AVAILABLE
    )

    client.delete_recurring_run(recurring.recurring_run_id)
    assert not client.list_recurring_runs(experiment_id=experiment.experiment_id).recurring_runs
    client.delete_run(run.run_id)
    client.delete_experiment(experiment.experiment_id)
    with pytest.raises(kfp_server_api.ApiException) as missing:
        client.get_experiment(experiment_id=experiment.experiment_id)
    assert missing.value.status == 404
