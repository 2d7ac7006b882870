"""Argo Workflow YAML on the local executor: uploaded, run by Canal's Argo interpreter,
recorded as tasks the run page and the API read like a KFP run's."""

from __future__ import annotations

import io
import json
import textwrap
from datetime import timedelta
from typing import Any

import pytest
import time_machine
import yaml
from django.core.management import call_command

from apps.core.authz import OPERATOR
from apps.core.choices import PipelineFormat, RunExecutor, RuntimeState
from apps.core.exceptions import InvalidInput
from apps.core.services import namespace_ensure
from apps.experiments.models import Experiment
from apps.pipelines.services import pipeline_create_from_upload
from apps.runs.models import Run, Task
from apps.runs.selectors import run_graph, task_log_read
from apps.runs.services import argo_interpret, run_advance, run_create, run_retry
from apps.schedules.models import RecurringRun
from apps.schedules.services import recurring_run_create
from tests.paths import ARGO_EXAMPLES
from tests.schedules.helpers import tick_at, utc

pytestmark = pytest.mark.django_db


def _upload(text: str, name: str):  # type: ignore[no-untyped-def]
    return pipeline_create_from_upload(
        actor=OPERATOR,
        namespace=namespace_ensure(actor=OPERATOR),
        data=text.encode(),
        filename=f"{name}.yaml",
        name=name,
    )


def _run(version, **kwargs) -> Run:  # type: ignore[no-untyped-def]
    run = run_create(
        actor=OPERATOR,
        namespace=version.pipeline.namespace,
        display_name="argo run",
        pipeline_version=version,
        **kwargs,
    )
    run_advance(run_id=run.pk)  # what the worker does with the start message
    argo_interpret(run_id=run.pk)  # ... and then with the interpret message
    return Run.objects.get(pk=run.pk)


def test_dag_diamond_runs_and_is_drawn_like_a_kfp_run() -> None:
    version = _upload((ARGO_EXAMPLES / "dag-diamond.yaml").read_text(), "diamond")
    run = _run(version)
    assert run.executor == RunExecutor.LOCAL
    assert run.state == RuntimeState.SUCCEEDED, run.error
    tasks = {t.key: t for t in Task.objects.filter(run=run)}
    assert {"root", "root/A", "root/B", "root/C", "root/D"} <= set(tasks)
    assert all(tasks[k].state == RuntimeState.SUCCEEDED for k in ("root/A", "root/B", "root/C", "root/D"))
    # B and C start only after A has finished; D after both.
    assert tasks["root/B"].started_at >= tasks["root/A"].finished_at
    assert tasks["root/D"].started_at >= max(tasks["root/B"].finished_at, tasks["root/C"].finished_at)
    overlay = run_graph(run=run)
    assert {overlay.states[n] for n in ("A", "B", "C", "D")} == {RuntimeState.SUCCEEDED}
    assert task_log_read(task=tasks["root/C"]).data.decode().strip() == "C"


PARAMS = textwrap.dedent(
    """
    apiVersion: argoproj.io/v1alpha1
    kind: Workflow
    metadata: {generateName: params-}
    spec:
      entrypoint: main
      arguments:
        parameters:
        - {name: greeting, value: hello}
        - {name: mode, value: fast, enum: [fast, slow]}
      templates:
      - name: main
        steps:
        - - name: say
            template: say
            arguments: {parameters: [{name: text, value: "{{workflow.parameters.greeting}}"}]}
        - - name: shout
            template: shout
            arguments: {parameters: [{name: text, value: "{{steps.say.outputs.parameters.out}}"}]}
        - - name: count
            template: count
            arguments: {parameters: [{name: text, value: "{{steps.shout.outputs.result}}"}]}
      - name: count
        inputs: {parameters: [{name: text}]}
        container: {image: busybox, command: [sh, -c, "printf %s '{{inputs.parameters.text}}' | wc -c"]}
      - name: say
        inputs: {parameters: [{name: text}]}
        outputs: {parameters: [{name: out, valueFrom: {path: /tmp/out}}]}
        script:
          image: python:3.12
          command: [python3]
          source: |
            open("/tmp/out", "w").write("{{inputs.parameters.text}} world")
      - name: shout
        inputs: {parameters: [{name: text}]}
        script:
          image: busybox
          command: [sh]
          source: echo "{{inputs.parameters.text}}" | tr a-z A-Z
    """
)


def test_parameters_override_and_flow_from_step_to_step() -> None:
    version = _upload(PARAMS, "params")
    run = _run(version, parameters={"greeting": "bonjour"})
    assert run.state == RuntimeState.SUCCEEDED, run.error
    say = Task.objects.get(run=run, key="root/say")
    assert say.outputs["parameters"]["out"] == "bonjour world"
    shout = Task.objects.get(run=run, key="root/shout")
    assert shout.outputs["parameters"]["result"] == "BONJOUR WORLD"
    assert task_log_read(task=shout).data.decode().strip() == "BONJOUR WORLD"
    count = Task.objects.get(run=run, key="root/count")
    assert task_log_read(task=count).data.decode().strip() == str(len("BONJOUR WORLD"))


def test_bad_parameters_and_unrunnable_templates_are_refused_with_the_reason() -> None:
    version = _upload(PARAMS, "params")
    with pytest.raises(InvalidInput, match="unknown parameter"):
        run_create(
            actor=OPERATOR,
            namespace=version.pipeline.namespace,
            display_name="x",
            pipeline_version=version,
            parameters={"nope": "1"},
        )
    with pytest.raises(InvalidInput, match="enum"):
        run_create(
            actor=OPERATOR,
            namespace=version.pipeline.namespace,
            display_name="x",
            pipeline_version=version,
            parameters={"mode": "medium"},
        )
    resource = _upload((ARGO_EXAMPLES / "k8s-jobs.yaml").read_text(), "jobs")
    with pytest.raises(InvalidInput, match="resource") as err:
        run_create(
            actor=OPERATOR, namespace=resource.pipeline.namespace, display_name="x", pipeline_version=resource
        )
    assert err.value.field == "pipeline_version"
    assert not Run.objects.exists()


FLAKY = textwrap.dedent(
    """
    apiVersion: argoproj.io/v1alpha1
    kind: Workflow
    metadata: {name: flaky}
    spec:
      entrypoint: main
      arguments: {parameters: [{name: marker}]}
      templates:
      - name: main
        dag:
          tasks:
          - {name: first, template: ok}
          - {name: second, template: check, depends: first}
      - name: ok
        container: {image: busybox, command: [sh, -c, "echo first ran"]}
      - name: check
        container:
          image: busybox
          command: [sh, -c, "test -e {{workflow.parameters.marker}} && echo found || (echo missing; exit 3)"]
    """
)


def test_failed_node_fails_the_run_and_retry_reruns_only_what_failed(step_shared) -> None:  # type: ignore[no-untyped-def]
    marker = step_shared / "marker"  # a shared volume: the only host files a pod may see
    version = _upload(FLAKY, "flaky")
    run = _run(version, parameters={"marker": str(marker)})
    assert run.state == RuntimeState.FAILED
    second = Task.objects.get(run=run, key="root/second")
    assert second.state == RuntimeState.FAILED
    assert "exit code 3" in second.error
    first = Task.objects.get(run=run, key="root/first")
    first_finished = first.finished_at
    marker.write_text("now")
    run_retry(actor=OPERATOR, run=run)
    argo_interpret(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RuntimeState.SUCCEEDED, run.error
    first.refresh_from_db()
    assert first.finished_at == first_finished  # kept, not run again
    assert Task.objects.get(run=run, key="root/second").state == RuntimeState.SUCCEEDED


@pytest.mark.django_db(transaction=True)  # the interpreting thread has its own connection
def test_a_worker_that_loses_its_lease_stops_its_pods(step_shared, settings) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    settings.CANAL_HEARTBEAT_SECONDS = 0.2
    started, done = step_shared / "started", step_shared / "done"
    text = _workflow_text(
        f"touch {started}; sleep 20; touch {done}",
    )
    version = _upload(text, "long")
    run = run_create(
        actor=OPERATOR, namespace=version.pipeline.namespace, display_name="x", pipeline_version=version
    )
    run_advance(run_id=run.pk)
    worker = threading.Thread(target=argo_interpret, kwargs={"run_id": run.pk})
    worker.start()
    deadline = time.monotonic() + 120
    while not started.exists():
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    # Another worker takes the run over (the reaper decided this one was dead).
    Run.objects.filter(pk=run.pk).update(
        executor_state={"lease": {"owner": "someone-else", "expires": time.time() + 600}}
    )
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert not done.exists()  # its pod was stopped, not left to run beside the new owner


def _workflow_text(script: str) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: argoproj.io/v1alpha1
        kind: Workflow
        metadata: {{generateName: long-}}
        spec:
          entrypoint: main
          templates:
          - name: main
            container: {{image: busybox, command: [sh, -c, "{script}"]}}
        """
    )


def test_with_argo_as_the_default_executor_local_runs_still_get_a_step_backend(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from apps.backends.local import LocalBackend
    from apps.runs.services import local_steps

    settings.CANAL_EXECUTION_BACKEND = "argo"
    monkeypatch.setattr(local_steps, "_backend", None)
    backend = local_steps.execution_backend()  # what a worker does first (its sandbox report)
    try:
        assert isinstance(backend, LocalBackend)
        version = _upload((ARGO_EXAMPLES / "dag-diamond.yaml").read_text(), "diamond-local")
        run = _run(version, executor="local")  # an experiment or a run may still choose local
        assert run.state == RuntimeState.SUCCEEDED, run.error
    finally:
        backend.close()


def test_a_step_first_seen_finished_records_its_task_before_its_artifacts() -> None:
    """A short step can start and finish between two syncs: its task row and its output
    artifacts arrive in one pass. MySQL checks the artifact's producer_task foreign key
    at the insert (SQLite only at commit), so the task must be written first."""
    from django.db.models.signals import pre_save

    from apps.artifacts.models import Artifact
    from apps.runs.services import argo_interpreted
    from apps.runs.services.workflow_records import workflow_status_record

    version = _upload((ARGO_EXAMPLES / "artifact-passing.yaml").read_text(), "artifact-passing")
    run = _run(version)
    assert run.state == RuntimeState.SUCCEEDED, run.error
    status = run.executor_state["status"]
    # The same final status, met by a sync that has seen none of its nodes before.
    Artifact.objects.filter(run=run).delete()
    Task.objects.filter(run=run).delete()
    orphans: list[str] = []

    def producer_exists(sender, instance, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if not Task.objects.filter(pk=instance.producer_task_id).exists():
            orphans.append(instance.name)

    pre_save.connect(producer_exists, sender=Artifact, dispatch_uid="producer-exists")
    try:
        workflow_status_record(
            run,
            argo_interpreted._workflow(run),
            status,
            log_path=lambda node: argo_interpreted.pod_log_path(run, node),
            artifact_uri=argo_interpreted._artifact_uri(run, argo_interpreted._run_dir(run)),
        )
    finally:
        pre_save.disconnect(dispatch_uid="producer-exists", sender=Artifact)
    produced = Artifact.objects.get(run=run, name="hello-art")
    assert produced.producer_task.key == "root/generate-artifact"
    assert produced.producer_task.state == RuntimeState.SUCCEEDED
    assert produced.producer_task.outputs["artifacts"]["hello-art"][0]["id"] == str(produced.pk)
    assert orphans == []


def test_an_inline_argo_workflow_runs_as_kfps_api_takes_one() -> None:
    """KFP's CreateRun takes an Argo Workflow (v1) in ``pipeline_spec`` as well as IR;
    so does run_create: the run is an Argo run, interpreted like an uploaded one."""
    workflow = yaml.safe_load(PARAMS)
    run = run_create(
        actor=OPERATOR,
        namespace=namespace_ensure(actor=OPERATOR),
        display_name="inline",
        pipeline_spec=workflow,
        parameters={"greeting": "hi"},
    )
    assert run.spec_format == PipelineFormat.ARGO
    assert run.pipeline_name == "params"  # metadata.generateName, without its dash
    run_advance(run_id=run.pk)
    argo_interpret(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RuntimeState.SUCCEEDED, run.error
    shout = Task.objects.get(run=run, key="root/shout")
    assert shout.outputs["parameters"]["result"] == "HI WORLD"


def test_an_inline_argo_workflow_is_checked_like_an_uploaded_one() -> None:
    namespace = namespace_ensure(actor=OPERATOR)
    with pytest.raises(InvalidInput, match="enum") as err:
        run_create(
            actor=OPERATOR,
            namespace=namespace,
            display_name="x",
            pipeline_spec=yaml.safe_load(PARAMS),
            parameters={"mode": "medium"},
        )
    assert err.value.field == "parameters.mode"
    jobs = yaml.safe_load((ARGO_EXAMPLES / "k8s-jobs.yaml").read_text())
    with pytest.raises(InvalidInput, match="resource"):
        run_create(actor=OPERATOR, namespace=namespace, display_name="x", pipeline_spec=jobs)
    with pytest.raises(InvalidInput, match="resource"):
        recurring_run_create(
            actor=OPERATOR,
            namespace=namespace,
            display_name="x",
            pipeline_spec=jobs,
            trigger_type="PERIODIC",
            interval_second=3600,
        )
    assert not Run.objects.exists()
    assert not RecurringRun.objects.exists()


def test_a_recurring_run_of_an_inline_argo_workflow_fires_argo_runs() -> None:
    start = utc(2030, 1, 1)
    with time_machine.travel(start, tick=False):
        recurring = recurring_run_create(
            actor=OPERATOR,
            namespace=namespace_ensure(actor=OPERATOR),
            display_name="hourly",
            pipeline_spec=yaml.safe_load(PARAMS),
            parameters={"greeting": "hey"},
            trigger_type="PERIODIC",
            interval_second=3600,
            start_time=start,
        )
    report = tick_at(start + timedelta(hours=1, seconds=1))
    assert len(report.fired) == 1, report
    run = Run.objects.get(recurring_run=recurring)
    assert run.spec_format == PipelineFormat.ARGO
    assert run.runtime_parameters["greeting"] == "hey"


def test_run_pipeline_starts_an_argo_workflow_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS)
    out = io.StringIO()
    call_command("run_pipeline", str(path), "-p", "greeting=salut", "--json", stdout=out)
    created = json.loads(out.getvalue())
    run = Run.objects.get(pk=created["run_id"])
    assert run.spec_format == PipelineFormat.ARGO
    run_advance(run_id=run.pk)
    argo_interpret(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RuntimeState.SUCCEEDED, run.error
    assert Task.objects.get(run=run, key="root/say").outputs["parameters"]["out"] == "salut world"


def _hello(**parameter: str) -> dict[str, Any]:
    """An inline Workflow of one step with one parameter, ``who`` (``parameter``: its
    declaration's other keys; no ``value`` makes it required)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hello-"},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "who", **parameter}]},
            "templates": [
                {
                    "name": "main",
                    "container": {"image": "alpine:3", "command": ["echo", "{{workflow.parameters.who}}"]},
                }
            ],
        },
    }


def _hourly(**kwargs: Any) -> RecurringRun:
    return recurring_run_create(
        actor=OPERATOR,
        namespace=namespace_ensure(actor=OPERATOR),
        display_name="hourly",
        trigger_type="PERIODIC",
        interval_second=3600,
        **kwargs,
    )


def test_a_recurring_run_checks_its_workflow_with_the_parameters_it_was_given() -> None:
    """A required Workflow parameter given to the recurring run (a macro too) is a value:
    the schedule is refused only when a firing's run would be."""
    required = _hello()
    _hourly(pipeline_spec=required, parameters={"who": "me"})
    _hourly(pipeline_spec=required, parameters={"who": "[[ScheduledTime]]"})
    with pytest.raises(InvalidInput, match="who: is required") as err:
        _hourly(pipeline_spec=required)
    assert err.value.field == "parameters.who"
    with pytest.raises(InvalidInput, match="must be one of a, b"):
        _hourly(pipeline_spec=_hello(value="a", enum=["a", "b"]), parameters={"who": "c"})
    assert RecurringRun.objects.count() == 2


@pytest.mark.parametrize("kind", ["WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"])
def test_an_inline_argo_spec_must_be_a_workflow_as_in_kfp(kind: str) -> None:
    """KFP refuses any other kind in pipeline_spec; templates and CronWorkflows are
    uploaded as pipelines (a CronWorkflow's schedule would be dropped inline)."""
    document = {**_hello(value="x"), "kind": kind, "metadata": {"name": "t"}}
    if kind == "CronWorkflow":
        document["spec"] = {"schedules": ["0 * * * *"], "workflowSpec": document["spec"]}
    namespace = namespace_ensure(actor=OPERATOR)
    with pytest.raises(InvalidInput, match=f"must be a Workflow, not a {kind}") as err:
        run_create(actor=OPERATOR, namespace=namespace, display_name="t", pipeline_spec=document)
    assert err.value.field == "pipeline_spec"
    with pytest.raises(InvalidInput, match="must be a Workflow"):
        _hourly(pipeline_spec=document)
    assert not Run.objects.exists() and not RecurringRun.objects.exists()


def test_the_refusals_of_an_inline_workflow_name_pipeline_spec(settings) -> None:  # type: ignore[no-untyped-def]
    namespace = namespace_ensure(actor=OPERATOR)
    jobs = yaml.safe_load((ARGO_EXAMPLES / "k8s-jobs.yaml").read_text())
    with pytest.raises(InvalidInput, match="local executor cannot run") as local:
        run_create(actor=OPERATOR, namespace=namespace, display_name="x", pipeline_spec=jobs)
    settings.CANAL_KUBECONFIG = "/not/read/at/creation"
    privileged = _hello(value="x")
    privileged["spec"]["templates"][0]["container"]["securityContext"] = {"privileged": True}
    with pytest.raises(InvalidInput, match="privileged") as cluster:
        run_create(
            actor=OPERATOR, namespace=namespace, display_name="x", pipeline_spec=privileged, executor="argo"
        )
    assert (local.value.field, cluster.value.field) == ("pipeline_spec", "pipeline_spec")


def test_a_recurring_run_is_checked_for_its_experiments_executor(settings) -> None:  # type: ignore[no-untyped-def]
    """Its firings run on the experiment's executor: what run_create accepts there, the
    schedule accepts; what it refuses there, the schedule refuses at creation."""
    settings.CANAL_KUBECONFIG = "/not/read/at/creation"
    namespace = namespace_ensure(actor=OPERATOR)
    on_argo = Experiment.objects.create(namespace=namespace, display_name="on-argo", execution_backend="argo")
    jobs = yaml.safe_load((ARGO_EXAMPLES / "k8s-jobs.yaml").read_text())
    _hourly(experiment=on_argo, pipeline_spec=jobs)  # the local interpreter's refusal does not apply
    privileged = _hello(value="x")
    privileged["spec"]["templates"][0]["container"]["securityContext"] = {"privileged": True}
    with pytest.raises(InvalidInput, match="privileged: not allowed on the argo executor"):
        _hourly(experiment=on_argo, pipeline_spec=privileged)
    with pytest.raises(InvalidInput, match="local executor cannot run"):
        _hourly(pipeline_spec=jobs)  # the namespace's Default experiment: the local executor
    settings.CANAL_KUBECONFIG = ""
    with pytest.raises(InvalidInput, match="argo executor is not configured") as err:
        _hourly(experiment=on_argo, pipeline_spec=_hello(value="x"))
    assert err.value.field == "executor"
    assert RecurringRun.objects.count() == 1
