"""The argo executor against the emulated cluster, through the real ``kubernetes`` client:
submit, the persistence agent's sync, terminate, a deleted Workflow, logs that outlive
their pod, a duplicate submit after a crash, a controller restart, and 401/503 answers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.backends.argo.compiler import workflow_name
from apps.backends.argo.emulator import Emulator
from apps.backends.local import LocalBackend
from apps.core.authz import OPERATOR
from apps.core.choices import RunExecutor, RuntimeState
from apps.core.exceptions import InvalidInput
from apps.core.services import namespace_ensure
from apps.pipelines.services import pipeline_create_from_upload
from apps.runs.models import Run, Task
from apps.runs.selectors import task_log_read
from apps.runs.services import argo_run_sync, argo_runs_sync, run_advance, run_create, run_terminate
from tests.runs.cluster import emulated_cluster, pod_backend

pytestmark = pytest.mark.django_db

NS = "canal-runs"
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    """The emulated kubelet's pods: sandboxed host processes that see the shared directory."""
    backend = pod_backend(tmp_path_factory.mktemp("envs"))
    yield backend
    backend.close()


@pytest.fixture
def emulator(pods: LocalBackend, tmp_path: Path, settings: Any) -> Iterator[Emulator]:
    with emulated_cluster(pods, tmp_path, settings, NS, resync=0.1) as emulator:
        yield emulator


def _workflow(*steps: tuple[str, str], name: str = "steps") -> str:
    templates: list[dict[str, Any]] = [
        {"name": "main", "steps": [[{"name": step, "template": step}] for step, _ in steps]}
    ]
    templates += [
        {"name": step, "container": {"image": "busybox", "command": ["sh", "-c", script]}}
        for step, script in steps
    ]
    return yaml.safe_dump(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": f"{name}-"},
            "spec": {"entrypoint": "main", "templates": templates},
        }
    )


def _start(text: str, **kwargs: Any) -> Run:
    version = pipeline_create_from_upload(
        actor=OPERATOR,
        namespace=namespace_ensure(actor=OPERATOR),
        data=text.encode(),
        filename="w.yaml",
        name=f"w-{uuid.uuid4().hex[:8]}",
    )
    run = run_create(
        actor=OPERATOR,
        namespace=version.pipeline.namespace,
        display_name="on argo",
        pipeline_version=version,
        executor="argo",
        **kwargs,
    )
    run_advance(run_id=run.pk)
    return Run.objects.get(pk=run.pk)


def _sync_until(run: Run, states: frozenset[str] = RuntimeState.terminal(), timeout: float = TIMEOUT) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        argo_run_sync(run_id=run.pk)
        run.refresh_from_db()
        if run.state in states:
            return run
        assert time.monotonic() < deadline, f"run is still {run.state}: {run.executor_state}"
        time.sleep(0.1)


def test_submit_and_sync_to_success_with_logs_that_outlive_the_pod(emulator: Emulator) -> None:
    run = _start(_workflow(("hello", "echo hello from argo"), ("bye", "echo bye")))
    assert run.executor == RunExecutor.ARGO
    assert run.state == RuntimeState.RUNNING
    name = run.executor_state["workflow"]
    assert name == workflow_name(str(run.pk))
    assert emulator.workflow(NS, name)["metadata"]["labels"]["canal.io/run-id"] == str(run.pk)
    run = _sync_until(run)
    assert run.state == RuntimeState.SUCCEEDED, run.error
    hello = Task.objects.get(run=run, key="root/hello")
    assert hello.state == RuntimeState.SUCCEEDED
    assert Task.objects.get(run=run, key="root/bye").started_at >= hello.finished_at
    for pod in emulator.pods(NS):
        emulator.delete_pod(NS, pod["metadata"]["name"])
    assert not emulator.pods(NS)
    assert task_log_read(task=hello).data.decode().splitlines()[-1] == "hello from argo"  # Canal's copy
    argo_run_sync(run_id=run.pk)  # a finished run never moves back
    assert Run.objects.get(pk=run.pk).state == RuntimeState.SUCCEEDED


def test_an_uploaded_workflow_template_runs_as_the_workflow_it_would_start(emulator: Emulator) -> None:
    """The cluster's workflows resource takes kind Workflow only: a WorkflowTemplate
    (uploaded as a pipeline) is submitted as the Workflow of its spec, as `argo submit
    --from` does."""
    template = yaml.safe_load(_workflow(("hello", "echo from a template")))
    template.update(kind="WorkflowTemplate", metadata={"name": "greeter"})
    run = _start(yaml.safe_dump(template))
    submitted = emulator.workflow(NS, run.executor_state["workflow"])
    assert submitted["kind"] == "Workflow"
    assert submitted["spec"]["templates"] == template["spec"]["templates"]
    run = _sync_until(run)
    assert run.state == RuntimeState.SUCCEEDED, run.error
    hello = Task.objects.get(run=run, key="root/hello")
    assert task_log_read(task=hello).data.decode().splitlines()[-1] == "from a template"


def test_a_failed_node_fails_the_run_with_its_message(emulator: Emulator) -> None:
    run = _sync_until(_start(_workflow(("ok", "echo fine"), ("boom", "echo broken >&2; exit 4"))))
    assert run.state == RuntimeState.FAILED
    boom = Task.objects.get(run=run, key="root/boom")
    assert boom.state == RuntimeState.FAILED
    assert "exit code 4" in boom.error
    assert Task.objects.get(run=run, key="root/ok").state == RuntimeState.SUCCEEDED


def test_terminate_ends_canceled(emulator: Emulator) -> None:
    run = _start(_workflow(("sleepy", "sleep 300")))
    _sync_until(run, frozenset({RuntimeState.RUNNING}))
    run_terminate(actor=OPERATOR, run=run)
    assert emulator.workflow(NS, run.executor_state["workflow"])["spec"]["shutdown"] == "Terminate"
    run = _sync_until(run)
    assert run.state == RuntimeState.CANCELED


def test_a_deleted_workflow_fails_the_run_naming_it(emulator: Emulator) -> None:
    run = _start(_workflow(("sleepy", "sleep 300")))
    name = run.executor_state["workflow"]
    emulator.delete_workflow(NS, name)
    run = _sync_until(run)
    assert run.state == RuntimeState.FAILED
    assert f"the Workflow {name} was deleted from namespace {NS}" in run.error


def test_a_deleted_workflow_does_not_end_the_sync_pass_like_an_outage(emulator: Emulator) -> None:
    # argo_run_sync said "unreachable" (None) for a deleted Workflow, so the pass over
    # the active runs (oldest first) stopped there and the newer runs waited a tick.
    older = _start(_workflow(("sleepy", "sleep 300")))
    newer = _start(_workflow(("sleepy", "sleep 300")))
    emulator.delete_workflow(NS, older.executor_state["workflow"])
    assert argo_runs_sync() == [str(older.pk), str(newer.pk)]
    older.refresh_from_db()
    assert older.state == RuntimeState.FAILED
    run_terminate(actor=OPERATOR, run=newer)
    assert _sync_until(newer).state == RuntimeState.CANCELED


def test_duplicate_submit_after_a_crash_between_submit_and_commit(emulator: Emulator) -> None:
    run = _start(_workflow(("hello", "echo once")))
    name = run.executor_state["workflow"]
    # The worker submitted, then died before its transaction committed: the run is
    # still PENDING with no record of the submit, and the next advance submits again.
    Run.objects.filter(pk=run.pk).update(state=RuntimeState.PENDING, executor_state={})
    run_advance(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RuntimeState.RUNNING
    assert run.executor_state["workflow"] == name
    assert _sync_until(run).state == RuntimeState.SUCCEEDED


def test_a_controller_restart_mid_run(emulator: Emulator, step_shared: Path) -> None:
    gate = step_shared / "open"
    run = _start(
        _workflow(
            ("gate", f"while [ ! -e {gate} ]; do sleep 0.1; done; echo through"), ("after", "echo after")
        )
    )
    _sync_until(run, frozenset({RuntimeState.RUNNING}))
    emulator.restart_controller()
    gate.write_text("")
    run = _sync_until(run)
    assert run.state == RuntimeState.SUCCEEDED, run.error
    assert Task.objects.get(run=run, key="root/after").state == RuntimeState.SUCCEEDED


@pytest.mark.parametrize(("code", "words"), [(401, "refused Canal's credentials"), (503, "is unavailable")])
def test_api_server_faults_show_on_the_run_then_fail_it(
    emulator: Emulator, settings: Any, code: int, words: str
) -> None:
    run = _start(_workflow(("sleepy", "sleep 300")))
    emulator.fail_requests(code, None)
    argo_run_sync(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RuntimeState.RUNNING  # not failed at the first hiccup ...
    assert words in run.executor_state["sync_error"]  # ... but the reason is on the run
    settings.CANAL_ARGO_UNREACHABLE_SECONDS = 0
    argo_run_sync(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RuntimeState.FAILED
    assert "lost contact with the Kubernetes cluster" in run.error and words in run.error
    emulator.clear_faults()


def test_the_argo_executor_needs_a_cluster(settings: Any) -> None:
    settings.CANAL_KUBECONFIG = ""
    with pytest.raises(InvalidInput, match="CANAL_KUBECONFIG") as err:
        _start(_workflow(("hello", "echo hi")))
    assert err.value.field == "executor"
    assert not Run.objects.exists()


def test_the_api_and_the_experiment_choose_the_executor(emulator: Emulator, user: Any) -> None:
    from rest_framework.test import APIClient

    from apps.core.services import api_token_create
    from apps.experiments.models import Experiment

    version = pipeline_create_from_upload(
        actor=OPERATOR,
        namespace=namespace_ensure(actor=OPERATOR),
        data=_workflow(("hello", "echo hi")).encode(),
        filename="w.yaml",
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(actor=user, user=user, name='t')[1]}")
    reference = {"pipeline_id": str(version.pipeline_id), "pipeline_version_id": str(version.pk)}
    created = api.post(
        "/apis/v2beta1/runs",
        {"display_name": "via api", "pipeline_version_reference": reference, "executor": "argo"},
        format="json",
    )
    assert created.status_code == 200, created.content
    assert created.json()["executor"] == "argo"
    assert Run.objects.get(pk=created.json()["run_id"]).executor == RunExecutor.ARGO
    bad = api.post(
        "/apis/v2beta1/runs",
        {"display_name": "x", "pipeline_version_reference": reference, "executor": "k8s"},
        format="json",
    )
    assert bad.status_code == 400 and "executor" in bad.content.decode()
    # An experiment that runs on Argo: a run started the KFP way (no executor) goes there.
    experiment = Experiment.objects.create(
        namespace=version.pipeline.namespace, display_name="on argo", execution_backend=RunExecutor.ARGO
    )
    kfp_style = api.post(
        "/apis/v2beta1/runs",
        {"display_name": "kfp", "pipeline_version_reference": reference, "experiment_id": str(experiment.pk)},
        format="json",
    )
    assert kfp_style.status_code == 200, kfp_style.content
    assert Run.objects.get(pk=kfp_style.json()["run_id"]).executor == RunExecutor.ARGO
    plain = api.post(
        "/apis/v2beta1/runs", {"display_name": "p", "pipeline_version_reference": reference}, format="json"
    )
    assert Run.objects.get(pk=plain.json()["run_id"]).executor == RunExecutor.LOCAL


def test_a_kfp_pipeline_is_compiled_and_its_tasks_come_back_under_the_engines_keys(
    emulator: Emulator, settings: Any
) -> None:
    from apps.importers import import_pipeline
    from tests.paths import KFP_VALID

    imported = import_pipeline((KFP_VALID / "critical" / "add_numbers.yaml").read_bytes(), "p.yaml")
    namespace = namespace_ensure(actor=OPERATOR)
    common = {
        "actor": OPERATOR,
        "namespace": namespace,
        "display_name": "kfp on argo",
        "pipeline_spec": imported.pipeline_spec,
        "parameters": {"a": 20, "b": 22},
        "executor": "argo",
    }
    with pytest.raises(InvalidInput, match="object store") as err:
        run_create(**common)  # the default root is a directory on Canal's host
    assert err.value.field == "pipeline_root"
    root = "s3://canal-tests/artifacts"
    settings.CANAL_PIPELINE_ROOTS = [*settings.CANAL_PIPELINE_ROOTS, root]
    run = run_create(**common, pipeline_root=root)
    run_advance(run_id=run.pk)
    workflow = emulator.workflow(NS, workflow_name(str(run.pk)))
    assert workflow["metadata"]["annotations"]["canal.io/run-id"] == str(run.pk)
    run = _sync_until(run)
    assert run.state == RuntimeState.SUCCEEDED, run.error
    add = Task.objects.get(run=run, key="root/add-numbers", kind="CONTAINER")
    assert add.state == RuntimeState.SUCCEEDED
    assert add.inputs["parameters"] == {"a": 20, "b": 22}  # as the driver resolved them
    assert add.outputs["parameters"] == {"Output": 42}  # typed, as the engine records it
    root_task = Task.objects.get(run=run, key="root")
    assert (root_task.state, root_task.outputs["parameters"]) == (RuntimeState.SUCCEEDED, {"Output": 42})


def test_retry_reruns_the_failed_node_on_the_cluster_and_keeps_the_rest(
    emulator: Emulator, step_shared: Path
) -> None:
    from apps.runs.services import run_retry

    marker = step_shared / "fixed"
    run = _sync_until(_start(_workflow(("first", "echo first"), ("second", f"cat {marker}"))))
    assert run.state == RuntimeState.FAILED
    first = Task.objects.get(run=run, key="root/first")
    second_log = task_log_read(task=Task.objects.get(run=run, key="root/second")).data.decode()
    assert "No such file" in second_log  # copied before Argo's retry deleted the pod
    marker.write_text("fixed now\n")
    run_retry(actor=OPERATOR, run=run)
    run = _sync_until(run)
    assert run.state == RuntimeState.SUCCEEDED, run.error
    assert Task.objects.get(run=run, key="root/first").finished_at == first.finished_at  # not run again
    second = Task.objects.get(run=run, key="root/second")
    assert second.state == RuntimeState.SUCCEEDED
    assert task_log_read(task=second).data.decode().splitlines()[-1] == "fixed now"


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("serviceAccountName", "canal", "spec.serviceAccountName"),
        ("volumes", [{"name": "host", "hostPath": {"path": "/"}}], "spec.volumes[0].hostPath"),
        ("podSpecPatch", '{"hostPID": true}', "spec.podSpecPatch"),
    ],
)
def test_an_uploaded_workflow_may_not_ask_the_cluster_for_more_than_a_pipeline_may_have(
    emulator: Emulator, field: str, value: Any, where: str
) -> None:
    workflow = yaml.safe_load(_workflow(("hello", "echo hi")))
    workflow["spec"][field] = value
    with pytest.raises(InvalidInput, match="not allowed on the argo executor") as err:
        _start(yaml.safe_dump(workflow))
    assert where in err.value.message and err.value.field == "pipeline_version"
    assert not Run.objects.exists()
    privileged = yaml.safe_load(_workflow(("hello", "echo hi")))
    privileged["spec"]["templates"][1]["container"]["securityContext"] = {"privileged": True}
    with pytest.raises(InvalidInput, match=r"templates\[1\].container.securityContext.privileged"):
        _start(yaml.safe_dump(privileged))


def test_a_hostile_workflow_name_cannot_leave_the_pod_directories(step_shared: Path) -> None:
    from apps.runs.services import argo_interpret

    victim = step_shared / "victim"
    victim.mkdir()
    (victim / "keep").write_text("precious")
    workflow = yaml.safe_load(_workflow(("hello", "echo hi")))
    workflow["metadata"] = {"name": "../" * 40 + str(victim).lstrip("/")}
    version = pipeline_create_from_upload(
        actor=OPERATOR,
        namespace=namespace_ensure(actor=OPERATOR),
        data=yaml.safe_dump(workflow).encode(),
        filename="w.yaml",
    )
    run = run_create(
        actor=OPERATOR, namespace=version.pipeline.namespace, display_name="x", pipeline_version=version
    )
    run_advance(run_id=run.pk)
    argo_interpret(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RuntimeState.SUCCEEDED, run.error
    assert (victim / "keep").read_text() == "precious"
    assert not Path(f"{victim}.log").exists()


def test_a_workflow_no_controller_picks_up_fails_the_run_instead_of_waiting_forever(
    emulator: Emulator, settings: Any
) -> None:
    emulator.stop_controller()
    run = _start(_workflow(("hello", "echo hi")))
    argo_run_sync(run_id=run.pk)
    assert Run.objects.get(pk=run.pk).state == RuntimeState.RUNNING  # it may just be busy
    settings.CANAL_ARGO_UNREACHABLE_SECONDS = 0
    argo_run_sync(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RuntimeState.FAILED
    assert "no Argo controller picked up the Workflow" in run.error
    # Terminated while nothing runs it: CANCELED once the limit has passed, not CANCELING for ever.
    settings.CANAL_ARGO_UNREACHABLE_SECONDS = 300
    other = _start(_workflow(("hello", "echo hi")))
    run_terminate(actor=OPERATOR, run=other)
    argo_run_sync(run_id=other.pk)
    assert Run.objects.get(pk=other.pk).state == RuntimeState.CANCELING
    settings.CANAL_ARGO_UNREACHABLE_SECONDS = 0
    argo_run_sync(run_id=other.pk)
    assert Run.objects.get(pk=other.pk).state == RuntimeState.CANCELED


def test_a_step_with_malformed_outputs_fails_its_task_and_the_run_ends(
    emulator: Emulator, settings: Any
) -> None:
    from tests.runs.ir import container_pipeline

    spec = container_pipeline(
        "bad-outputs",
        {
            "liar": {
                "command": [
                    "sh",
                    "-c",
                    'printf \'{"parameterValues": 5}\' > "$0"',
                    "{{$.outputs.output_file}}",
                ],
                "outputs": ["answer"],
            }
        },
    )
    root = "s3://canal-tests/artifacts"
    settings.CANAL_PIPELINE_ROOTS = [*settings.CANAL_PIPELINE_ROOTS, root]
    run = run_create(
        actor=OPERATOR,
        namespace=namespace_ensure(actor=OPERATOR),
        display_name="bad outputs",
        pipeline_spec=spec,
        pipeline_root=root,
        executor="argo",
    )
    run_advance(run_id=run.pk)
    run = _sync_until(run)
    liar = Task.objects.get(run=run, key="root/liar")
    assert run.state == RuntimeState.FAILED
    assert liar.state == RuntimeState.FAILED
    assert "the step's outputs cannot be read" in liar.error
    assert "liar" in run.error  # the Workflow Succeeded (the pod exited 0); the run did not
