"""Artifacts belong to a namespace (issue 9, "The importer").

Two namespaces, A (alice) and B (bob), with runs whose artifacts are real files where
the launcher writes them. An importer in A may reference only A's runs (or an allowed
external prefix): anything else is refused when the run is created (400, no Run row),
or, when the URI only exists at run time, the importer fails saying why. Downloads,
views and the API's :read serve only what the artifact's namespace owns, and ``path=``
stays inside the artifact. ``pipeline_root`` must be a configured root or inside one.
"""

# No "from __future__ import annotations": kfp reads the components' real annotations.

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from kfp import dsl
from rest_framework.test import APIClient

from apps.artifacts.models import Artifact
from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.exceptions import InvalidInput
from apps.core.services import api_token_create, namespace_ensure
from apps.experiments.models import Experiment
from apps.runs.models import Run, Task
from apps.runs.services import run_create
from apps.schedules.models import RecurringRun
from tests.factories import ArtifactFactory, TaskFactory, UserFactory, artifact_file, run_artifact_dir
from tests.live import wait_for_run
from tests.runs.kfp_pipelines import compile_to_ir

API = "/apis/v2beta1"
HELLO = {
    "pipelineInfo": {"name": "hello"},
    "schemaVersion": "2.1.0",
    "sdkVersion": "kfp-2.14.6",
    "components": {"comp-echo": {"executorLabel": "exec-echo"}},
    "deploymentSpec": {"executors": {"exec-echo": {"container": {"image": "alpine:3", "command": ["true"]}}}},
    "root": {
        "dag": {"tasks": {"echo": {"componentRef": {"name": "comp-echo"}, "taskInfo": {"name": "echo"}}}}
    },
}


# --- pipelines (compiled by the real kfp SDK) -----------------------------------------------------


def import_constant(uri: str) -> dict[str, Any]:
    """One importer of a constant URI."""

    @dsl.pipeline(name="import-constant")
    def pipeline() -> None:
        dsl.importer(artifact_uri=uri, artifact_class=dsl.Dataset)

    return compile_to_ir(pipeline)


@dsl.pipeline(name="inner")
def _inner(uri: str) -> None:
    dsl.importer(artifact_uri=uri, artifact_class=dsl.Dataset)


@dsl.pipeline(name="import-nested-parameter")
def import_nested_parameter(uri: str) -> None:
    _inner(uri=uri)


@dsl.container_component
def write_dataset(data: dsl.Output[dsl.Dataset]):
    return dsl.ContainerSpec(image="alpine:3", command=["sh", "-c", 'printf hello > "$0"'], args=[data.path])


@dsl.pipeline(name="writer")
def writer() -> None:
    write_dataset()


@dsl.container_component
def emit(uri: str, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image="alpine:3", command=["sh", "-c", 'printf %s "$0" > "$1"'], args=[uri, out])


@dsl.container_component
def claim(data: dsl.Output[dsl.Dataset]):
    # Replaced below by a step that writes executor_output.json naming another URI.
    return dsl.ContainerSpec(image="alpine:3", command=["true"], args=[data.path])


@dsl.container_component
def consume(data: dsl.Input[dsl.Dataset]):
    return dsl.ContainerSpec(image="alpine:3", command=["cat"], args=[data.path])


# A step may say its output artifact lives elsewhere (KFP merges the written URI over
# the provisioned one), as dsl.get_uri() or `artifact.uri = ...` do.
CLAIM_SCRIPT = """
import json, os, sys
out = json.loads(sys.argv[1])["outputs"]["outputFile"]
os.makedirs(os.path.dirname(out), exist_ok=True)
artifact = {"name": "data", "uri": sys.argv[2]}
json.dump({"artifacts": {"data": {"artifacts": [artifact]}}}, open(out, "w"))
"""


def claim_then_consume(uri: str) -> dict[str, Any]:
    @dsl.pipeline(name="claim-then-consume")
    def pipeline() -> None:
        consume(data=claim().outputs["data"])

    spec = compile_to_ir(pipeline)
    spec["deploymentSpec"]["executors"]["exec-claim"]["container"].update(
        command=["python3", "-c", CLAIM_SCRIPT], args=["{{$}}", uri]
    )
    return spec


@dsl.pipeline(name="import-from-upstream")
def import_from_upstream(target: str) -> None:
    # The importer's URI is an upstream output: unknown until the run executes.
    made = emit(uri=target)
    dsl.importer(artifact_uri=made.outputs["out"], artifact_class=dsl.Dataset)


# --- two namespaces with real artifacts --------------------------------------------------------------


@pytest.fixture
def world(db: Any) -> SimpleNamespace:
    ns_a, ns_b = (
        namespace_ensure(actor=OPERATOR, name="team-a"),
        namespace_ensure(actor=OPERATOR, name="team-b"),
    )
    alice = UserFactory(username="alice-a", namespace=ns_a)
    bob = UserFactory(username="bob-b", namespace=ns_b)
    clients = {}
    for name, user in (("alice", alice), ("bob", bob)):
        api = APIClient()
        api.credentials(
            HTTP_AUTHORIZATION=f"Bearer {api_token_create(actor=OPERATOR, user=user, name='t')[1]}"
        )
        web = Client()
        web.force_login(user)
        clients[name] = SimpleNamespace(api=api, web=web)
    # One finished run in each namespace, each with an artifact file where its run writes.
    runs = {}
    for label, ns in (("a", ns_a), ("b", ns_b)):
        run = run_create(namespace=ns, actor=OPERATOR, display_name=f"run-{label}", pipeline_spec=HELLO)
        task = TaskFactory(run=run, name="train", key="root/train")
        uri = artifact_file(task, "model", f"secret of {label}")
        runs[label] = SimpleNamespace(
            run=run, task=task, uri=uri, artifact=ArtifactFactory(producer_task=task, name="model", uri=uri)
        )
    return SimpleNamespace(
        ns_a=ns_a,
        ns_b=ns_b,
        alice=clients["alice"],
        bob=clients["bob"],
        a=runs["a"],
        b=runs["b"],
        root=Path(settings.CANAL_PIPELINE_ROOT).resolve(),
        experiment_a=Experiment.objects.get(namespace=ns_a, display_name="Default"),
    )


def _create(world: SimpleNamespace, spec: dict[str, Any], **runtime: Any) -> Any:
    body = {
        "display_name": "attempt",
        "experiment_id": str(world.experiment_a.pk),
        "pipeline_spec": spec,
        "runtime_config": runtime,
    }
    return world.alice.api.post(f"{API}/runs", body, format="json")


# --- importers, at run creation ------------------------------------------------------------------------


FOREIGN = {
    "B's artifact": lambda w: w.b.uri,
    "B's run directory": lambda w: str(run_artifact_dir(w.b.run)),
    "B's artifact as file://": lambda w: f"file://{w.b.uri}",
    "the artifact root": lambda w: str(w.root),
    "the pipeline directory of both": lambda w: str(run_artifact_dir(w.a.run).parent),
    "/etc/passwd": lambda w: "/etc/passwd",
    "file:///etc/passwd": lambda w: "file:///etc/passwd",
    "traversal from A's run into B's": lambda w: f"{run_artifact_dir(w.a.run)}/../{w.b.run.pk}/train/t/model",
    "encoded traversal": lambda w: f"file://{run_artifact_dir(w.a.run)}/%2e%2e/{w.b.run.pk}/train/t/model",
    "the data dir's secret key": lambda w: str(Path(settings.CANAL_DATA_DIR) / "secret_key"),
    "an unconfigured bucket": lambda w: "s3://someone-elses-bucket/data.csv",
}


@pytest.mark.parametrize("which", list(FOREIGN))
def test_an_importer_of_storage_its_namespace_does_not_own_is_refused_at_creation(world, which) -> None:  # type: ignore[no-untyped-def]
    uri = FOREIGN[which](world)
    runs_before = Run.objects.count()
    response = _create(world, import_constant(uri))
    assert response.status_code == 400, response.content
    message = response.json()["message"]
    assert "task 'importer' imports" in message and repr(uri) in message and "team-a" in message
    assert Run.objects.count() == runs_before  # nothing written


def test_an_importer_uri_from_a_parameter_is_refused_through_nested_pipelines(world) -> None:  # type: ignore[no-untyped-def]
    spec = compile_to_ir(import_nested_parameter)
    response = _create(world, spec, parameters={"uri": world.b.uri})
    assert response.status_code == 400
    assert "task 'inner/importer' imports" in response.json()["message"]
    # The same pipeline importing A's own artifact is accepted: the check can pass.
    response = _create(world, spec, parameters={"uri": world.a.uri})
    assert response.status_code == 200, response.content
    # The service names the parameter as the field (the web form shows it there).
    with pytest.raises(InvalidInput) as err:
        run_create(
            namespace=world.ns_a,
            actor=OPERATOR,
            display_name="x",
            pipeline_spec=spec,
            parameters={"uri": world.b.uri},
        )
    assert err.value.field == "parameters.uri"


def test_importers_of_own_runs_and_allowed_prefixes_are_accepted(world, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for uri in (world.a.uri, str(run_artifact_dir(world.a.run)), f"file://{world.a.uri}"):
        assert _create(world, import_constant(uri)).status_code == 200, uri
    shared = tmp_path / "shared-datasets"
    assert _create(world, import_constant(f"{shared}/iris.csv")).status_code == 400
    settings.CANAL_IMPORT_ALLOWED_PREFIXES = [str(shared), "gs://ml-pipeline-playground/"]
    assert _create(world, import_constant(f"{shared}/iris.csv")).status_code == 200
    assert _create(world, import_constant("gs://ml-pipeline-playground/shakespeare1.txt")).status_code == 200
    assert _create(world, import_constant("gs://ml-pipeline-playground-evil/x")).status_code == 400


def test_a_recurring_run_with_a_foreign_importer_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    body = {
        "display_name": "nightly",
        "experiment_id": str(world.experiment_a.pk),
        "pipeline_spec": import_constant(world.b.uri),
        "trigger": {"periodic_schedule": {"interval_second": "3600"}},
    }
    response = world.alice.api.post(f"{API}/recurringruns", body, format="json")
    assert response.status_code == 400 and world.b.uri in response.json()["message"]
    assert RecurringRun.objects.count() == 0


# --- reads: download, view, entries, :read -------------------------------------------------------------


def _reads(world: SimpleNamespace, artifact: Artifact, client: SimpleNamespace) -> dict[str, int]:
    run, task = artifact.run, artifact.producer_task
    return {
        "download": client.web.get(f"/artifacts/{artifact.pk}/download/").status_code,
        "view": client.web.get(f"/artifacts/{artifact.pk}/view/").status_code,
        ":read": client.api.get(
            f"{API}/runs/{run.pk}/nodes/{task.pk}/artifacts/{artifact.name}:read"
        ).status_code,
    }


def _point_task_at(task: Task, artifact: Artifact) -> None:
    ref = {"id": str(artifact.pk), "name": artifact.name, "uri": artifact.uri}
    Task.objects.filter(pk=task.pk).update(outputs={"artifacts": {artifact.name: [ref]}})


def test_own_artifacts_are_served_and_other_namespaces_get_404(world) -> None:  # type: ignore[no-untyped-def]
    _point_task_at(world.a.task, world.a.artifact)
    assert _reads(world, world.a.artifact, world.alice) == {"download": 200, "view": 200, ":read": 200}
    response = world.alice.api.get(
        f"{API}/runs/{world.a.run.pk}/nodes/{world.a.task.pk}/artifacts/model:read"
    )
    assert base64.b64decode(response.json()["data"]) == b"secret of a"
    assert set(_reads(world, world.a.artifact, world.bob).values()) == {404}


def test_a_row_pointing_into_another_namespace_is_never_served(world) -> None:  # type: ignore[no-untyped-def]
    # What an importer (before this check) or a step's executor_output could record.
    for uri in (world.b.uri, f"file://{world.b.uri}", str(run_artifact_dir(world.b.run)), str(world.root)):
        task = TaskFactory(run=world.a.run, name=f"stolen-{len(uri)}")
        stolen = ArtifactFactory(producer_task=task, name="model", uri=uri)
        _point_task_at(task, stolen)
        assert set(_reads(world, stolen, world.alice).values()) == {404}, uri
        page = world.alice.web.get(f"/artifacts/{stolen.pk}/").content.decode()
        assert "secret of b" not in page and "not in its namespace&#x27;s storage" in page
        # Not even with path= from a directory that contains it.
        listing = world.alice.web.get(f"/artifacts/{stolen.pk}/download/", {"path": "train/t/model"})
        assert listing.status_code == 404


def test_a_symlink_in_a_run_directory_does_not_reach_another_namespace(world) -> None:  # type: ignore[no-untyped-def]
    link = run_artifact_dir(world.a.run) / "train" / "t" / "link"
    link.symlink_to(world.b.uri)
    artifact = ArtifactFactory(producer_task=world.a.task, name="model", uri=str(link))
    assert world.alice.web.get(f"/artifacts/{artifact.pk}/download/").status_code == 404


def test_artifacts_of_another_run_of_the_same_namespace_are_served(world) -> None:  # type: ignore[no-untyped-def]
    # A cache hit or an importer in run 2 points at run 1's files (same namespace).
    second = run_create(namespace=world.ns_a, actor=OPERATOR, display_name="second", pipeline_spec=HELLO)
    task = TaskFactory(run=second, name="cached", key="root/cached")
    reused = ArtifactFactory(producer_task=task, name="model", uri=world.a.uri)
    _point_task_at(task, reused)
    assert _reads(world, reused, world.alice) == {"download": 200, "view": 200, ":read": 200}
    # Once run 1 is deleted, nobody owns its directory any more.
    Run.objects.filter(pk=world.a.run.pk).delete()
    assert world.alice.web.get(f"/artifacts/{reused.pk}/download/").status_code == 404


TRAVERSALS = [
    "..",
    "../..",
    "../../../x",
    "..%2f..%2fmodel",
    "..%252f..%252fmodel",
    "%2e%2e/%2e%2e",
    "/etc/passwd",
    "file:///etc/passwd",
    "sub/../../../x",
    "sub\\..\\..\\x",
    "a#/../../x",
    "a?x=/../../",
    "escape",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_cannot_leave_the_artifact(world, path: str) -> None:  # type: ignore[no-untyped-def]
    directory = run_artifact_dir(world.a.run) / "train" / "t" / "dir"
    (directory / "sub").mkdir(parents=True, exist_ok=True)
    (directory / "sub" / "ok.txt").write_text("inside")
    escape = directory / "escape"
    if not escape.is_symlink():
        escape.symlink_to(run_artifact_dir(world.b.run))
    artifact = ArtifactFactory(producer_task=world.a.task, name="dir", uri=str(directory))
    assert (
        world.alice.web.get(f"/artifacts/{artifact.pk}/download/", {"path": "sub/ok.txt"}).status_code == 200
    )
    for view in ("download", "view"):
        response = world.alice.web.get(f"/artifacts/{artifact.pk}/{view}/", {"path": path})
        assert response.status_code == 404, (view, path)
        assert b"secret of" not in b"".join(getattr(response, "streaming_content", [response.content]))


# --- pipeline_root -------------------------------------------------------------------------------------


BAD_ROOTS = [
    "/",
    "..",
    "relative/dir",
    "file:///",
    "file:///etc",
    "http://x",
    "https://example.com/artifacts",
    "s3://unconfigured-bucket/artifacts",
    "minio://mlpipeline/v2/artifacts",
    "/etc",
]


@pytest.mark.parametrize("root", [*BAD_ROOTS, "{root}/../elsewhere", "{root}/./x", "{root}2"])
def test_pipeline_root_outside_the_configured_roots_is_refused(world, root: str) -> None:  # type: ignore[no-untyped-def]
    root = root.replace("{root}", str(world.root))
    runs_before = Run.objects.count()
    response = _create(world, HELLO, pipeline_root=root)
    assert response.status_code == 400, response.content
    assert str(world.root) in response.json()["message"]  # it names the allowed roots
    assert Run.objects.count() == runs_before
    # The web form says the same on the field, and the recurring-run API refuses it too.
    with pytest.raises(InvalidInput) as err:
        run_create(
            namespace=world.ns_a, actor=OPERATOR, display_name="x", pipeline_spec=HELLO, pipeline_root=root
        )
    assert err.value.field == "pipeline_root"
    body = {
        "display_name": "nightly",
        "experiment_id": str(world.experiment_a.pk),
        "pipeline_spec": HELLO,
        "runtime_config": {"pipeline_root": root},
        "trigger": {"periodic_schedule": {"interval_second": "3600"}},
    }
    response = world.alice.api.post(f"{API}/recurringruns", body, format="json")
    assert response.status_code == 400 and str(world.root) in response.json()["message"]
    assert RecurringRun.objects.count() == 0


def test_the_run_form_names_the_allowed_roots(world) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import PipelineVersionFactory

    version = PipelineVersionFactory(pipeline__namespace=world.ns_a)
    response = world.alice.web.post(
        f"/runs/new/?version={version.pk}", {"display_name": "x", "run_type": "one-off", "pipeline_root": "/"}
    )
    assert response.status_code == 400
    field = response.content.decode().split('name="pipeline_root"', 1)[1][:1500]
    assert "is not one of the configured roots" in field and str(world.root) in field
    assert not Run.objects.filter(display_name="x").exists()


def test_a_symlink_cannot_turn_a_sub_path_into_another_root(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    outside.mkdir()
    (world.root / "sneaky").symlink_to(outside)
    assert _create(world, HELLO, pipeline_root=f"{world.root}/sneaky/x").status_code == 400


def test_a_root_inside_another_runs_directory_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    inside = f"{run_artifact_dir(world.b.run)}/train"
    response = _create(world, HELLO, pipeline_root=inside)
    assert response.status_code == 400 and "another run's artifact directory" in response.json()["message"]


def test_sub_paths_and_configured_roots_are_accepted_and_normalised(world, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    response = _create(world, HELLO, pipeline_root=f"file://{world.root}//team-a/")
    assert response.status_code == 200, response.content
    assert Run.objects.get(pk=response.json()["run_id"]).pipeline_root == f"{world.root}/team-a"
    extra = tmp_path / "fast-disk"
    assert _create(world, HELLO, pipeline_root=str(extra)).status_code == 400
    settings.CANAL_PIPELINE_ROOTS = [str(extra), "s3://ml-artifacts/canal"]
    assert _create(world, HELLO, pipeline_root=f"{extra}/x").status_code == 200
    assert _create(world, HELLO, pipeline_root="s3://ml-artifacts/canal/team-a").status_code == 200
    assert _create(world, HELLO, pipeline_root="s3://ml-artifacts/other").status_code == 400


def test_invalid_configured_roots_are_ignored_never_trusted(world, settings) -> None:  # type: ignore[no-untyped-def]
    # 'manage.py check' reports them (canal.E101); at run time they are dropped, not honoured.
    settings.CANAL_PIPELINE_ROOTS = ["http://x", "/"]
    settings.CANAL_IMPORT_ALLOWED_PREFIXES = [str(world.root)]  # overlaps the root: would share everything
    assert _create(world, HELLO, pipeline_root="http://x/a").status_code == 400
    assert _create(world, HELLO, pipeline_root="/tmp").status_code == 400
    assert _create(world, import_constant(world.b.uri)).status_code == 400
    assert _create(world, HELLO, pipeline_root=f"{world.root}/ok").status_code == 200


def test_an_unconfigured_default_root_in_the_ir_falls_back_and_says_so(world, settings) -> None:  # type: ignore[no-untyped-def]
    spec = {**HELLO, "defaultPipelineRoot": "minio://mlpipeline/v2/artifacts"}
    response = _create(world, spec)
    assert response.status_code == 200, response.content
    run = Run.objects.get(pk=response.json()["run_id"])
    assert run.pipeline_root == str(world.root)
    page = world.alice.web.get(f"/runs/{run.pk}/").content.decode()
    assert "minio://mlpipeline/v2/artifacts is not one of Canal&#x27;s configured roots" in page
    # Configured, the IR's root is used as KFP would.
    settings.CANAL_PIPELINE_ROOTS = ["minio://mlpipeline/v2"]
    run = Run.objects.get(pk=_create(world, spec).json()["run_id"])
    assert run.pipeline_root == "minio://mlpipeline/v2/artifacts"
    assert "data-root-note" not in world.alice.web.get(f"/runs/{run.pk}/").content.decode()


# --- live: a real worker -----------------------------------------------------------------------------


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_importer_uri_from_an_upstream_output_is_checked_when_it_runs(worker) -> None:  # type: ignore[no-untyped-def]
    ns_a, ns_b = (
        namespace_ensure(actor=OPERATOR, name="team-a"),
        namespace_ensure(actor=OPERATOR, name="team-b"),
    )
    written = {}
    for label, ns in (("a", ns_a), ("b", ns_b)):
        run = run_create(
            namespace=ns, actor=OPERATOR, display_name=f"w-{label}", pipeline_spec=compile_to_ir(writer)
        )
        done = wait_for_run(run.pk, timeout=180)
        assert done.state == RuntimeState.SUCCEEDED, done.error
        written[label] = Artifact.objects.get(run=run, name="data").uri
        assert Path(written[label]).read_text() == "hello"

    spec = compile_to_ir(import_from_upstream)
    stolen = run_create(
        namespace=ns_a,
        actor=OPERATOR,
        display_name="steal",
        pipeline_spec=spec,
        parameters={"target": written["b"]},
    )
    done = wait_for_run(stolen.pk, timeout=180)
    assert done.state == RuntimeState.FAILED
    importer = Task.objects.get(run=stolen, name="importer")
    assert importer.state == RuntimeState.FAILED
    assert "namespace 'team-a' does not own" in importer.error and written["b"] in importer.error
    assert not Artifact.objects.filter(run=stolen, producer_task=importer).exists()

    # The same pipeline importing A's own artifact succeeds: the check can pass.
    own = run_create(
        namespace=ns_a,
        actor=OPERATOR,
        display_name="own",
        pipeline_spec=spec,
        parameters={"target": written["a"]},
    )
    done = wait_for_run(own.pk, timeout=180)
    assert done.state == RuntimeState.SUCCEEDED, done.error
    imported = Artifact.objects.get(run=own, producer_task__name="importer")
    assert imported.uri == written["a"]
    alice = UserFactory(username="alice-live", namespace=ns_a)
    web = Client()
    web.force_login(alice)
    response = web.get(f"/artifacts/{imported.pk}/download/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"hello"


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_sub_path_root_receives_the_artifacts(worker) -> None:  # type: ignore[no-untyped-def]
    root = Path(settings.CANAL_PIPELINE_ROOT).resolve() / "team-a" / "experiments"
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR, name="team-a"),
        actor=OPERATOR,
        display_name="sub",
        pipeline_spec=compile_to_ir(writer),
        pipeline_root=f"file://{root}/",
    )
    done = wait_for_run(run.pk, timeout=180)
    assert done.state == RuntimeState.SUCCEEDED, done.error
    uri = Artifact.objects.get(run=run, name="data").uri
    assert uri.startswith(f"{root}/writer/{run.pk}/write-dataset/")
    assert Path(uri).read_text() == "hello"


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_step_cannot_read_an_artifact_another_step_claimed_elsewhere(worker) -> None:  # type: ignore[no-untyped-def]
    ns_a, ns_b = (
        namespace_ensure(actor=OPERATOR, name="team-a"),
        namespace_ensure(actor=OPERATOR, name="team-b"),
    )
    theirs = run_create(namespace=ns_b, actor=OPERATOR, display_name="b", pipeline_spec=compile_to_ir(writer))
    done = wait_for_run(theirs.pk, timeout=180)
    assert done.state == RuntimeState.SUCCEEDED, done.error
    their_uri = Artifact.objects.get(run=theirs, name="data").uri

    run = run_create(
        namespace=ns_a, actor=OPERATOR, display_name="claim", pipeline_spec=claim_then_consume(their_uri)
    )
    done = wait_for_run(run.pk, timeout=180)
    assert done.state == RuntimeState.FAILED
    consumer = Task.objects.get(run=run, name="consume")
    assert consumer.state == RuntimeState.FAILED
    assert f"input artifact 'data' is at {their_uri}" in consumer.error and "team-a" in consumer.error
    log = Path(consumer.log_path)
    assert not log.exists() or "hello" not in log.read_text()  # it never ran

    # Claiming an artifact of another run of its own namespace is fine: the check can pass.
    mine = run_create(namespace=ns_a, actor=OPERATOR, display_name="a", pipeline_spec=compile_to_ir(writer))
    assert wait_for_run(mine.pk, timeout=180).state == RuntimeState.SUCCEEDED
    my_uri = Artifact.objects.get(run=mine, name="data").uri
    run = run_create(
        namespace=ns_a, actor=OPERATOR, display_name="ok", pipeline_spec=claim_then_consume(my_uri)
    )
    done = wait_for_run(run.pk, timeout=180)
    assert done.state == RuntimeState.SUCCEEDED, done.error
    consumer = Task.objects.get(run=run, name="consume")
    assert Path(consumer.log_path).read_text().strip() == "hello"
