"""``apps.backends.argo.cluster``: retry and node views as pure functions, the client against the emulator.

The emulator is reached through the real ``kubernetes`` client, as Canal's
services will reach a cluster. Its executor is whatever the emulator ships
(plain ``container`` templates running ``sh``); waits poll with generous
timeouts and nothing asserts a duration.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient, Configuration, CoreV1Api
from kubernetes.client.exceptions import ApiException

from apps.backends.argo.cluster import (
    RUN_ID_KEY,
    ArgoCluster,
    AuthError,
    ClusterConfig,
    ConfigError,
    Invalid,
    NameTaken,
    NotFound,
    Unavailable,
    formulate_retry,
    pod_name,
    workflow_finished,
    workflow_message,
    workflow_nodes,
    workflow_phase,
    workflow_run_id,
)
from apps.backends.argo.compiler import LABEL_RUN_ID
from apps.backends.argo.emulator import Emulator
from apps.backends.argo.emulator.naming import node_id
from apps.backends.argo.emulator.naming import pod_name as emulator_pod_name
from apps.backends.argo.interpreter.machine import pod_name_for
from apps.backends.local import LocalBackend, TaskEnvManager
from apps.backends.local.sandbox import SandboxConfig

NS = "canal-test"
TOKEN = "cluster-test-token"
# Generous: the machine is shared and slow at times; the tests wait on conditions, never on durations.
TIMEOUT = 120.0
NOW = "2026-01-02T03:04:05Z"


# -- Argo-shaped statuses, for the pure tests ---------------------------------------------------
def _node(wf: str, name: str, kind: str, phase: str, **extra: Any) -> dict[str, Any]:
    ident = node_id(wf, name)
    node: dict[str, Any] = {
        "id": ident,
        "name": name,
        "displayName": extra.pop("display", name.rsplit(".", 1)[-1]),
        "type": kind,
        "phase": phase,
        "startedAt": "2026-01-01T00:00:00Z",
        "templateScope": f"local/{wf}",
    }
    if phase in ("Succeeded", "Failed", "Error", "Omitted", "Skipped"):
        node["finishedAt"] = "2026-01-01T00:01:00Z"
    node.update(extra)
    return node


def _workflow(name: str, phase: str, nodes: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": NS,
            "resourceVersion": "42",
            "uid": "0f0f0f0f-0000-4000-8000-000000000000",
            "labels": {
                "workflows.argoproj.io/completed": "true",
                "workflows.argoproj.io/phase": phase,
                LABEL_RUN_ID: "run-1",
            },
        },
        "spec": {"entrypoint": "main", "templates": [], **spec},
        "status": {
            "phase": phase,
            "startedAt": "2026-01-01T00:00:00Z",
            "finishedAt": "2026-01-01T00:02:00Z",
            "message": "child failed",
            "progress": "2/3",
            "conditions": [
                {"type": "PodRunning", "status": "False"},
                {"type": "Completed", "status": "True"},
            ],
            "nodes": {node["id"]: node for node in nodes},
        },
    }


def _diamond() -> dict[str, Any]:
    """A DAG a -> (b, c) -> d as Argo leaves it with failFast off: b failed, c succeeded, d omitted."""
    wf = "diamond"
    a, b, c, d = (node_id(wf, f"{wf}.{t}") for t in "abcd")
    nodes = [
        _node(wf, wf, "DAG", "Failed", templateName="main", children=[a], outboundNodes=[d],
              message="child 'diamond-b' failed"),
        _node(wf, f"{wf}.a", "Pod", "Succeeded", templateName="echo", boundaryID=wf, children=[b, c],
              outputs={"exitCode": "0", "parameters": [{"name": "out", "value": "hi"}]}),
        _node(wf, f"{wf}.b", "Pod", "Failed", templateName="fail", boundaryID=wf, children=[d],
              message="main: Error (exit code 1)", outputs={"exitCode": "1"}),
        _node(wf, f"{wf}.c", "Pod", "Succeeded", templateName="echo", boundaryID=wf, children=[d],
              outputs={"exitCode": "0"}),
        _node(wf, f"{wf}.d", "Skipped", "Omitted", templateName="echo", boundaryID=wf,
              message="omitted: depends condition not met"),
    ]  # fmt: skip
    return _workflow(wf, "Failed", nodes, shutdown="Terminate")


def _steps_with_retries() -> dict[str, Any]:
    """Steps whose one step failed both attempts of its retryStrategy, and an exit handler that ran."""
    wf = "steps"
    group, retry = node_id(wf, f"{wf}[0]"), node_id(wf, f"{wf}[0].flaky")
    first, second = node_id(wf, f"{wf}[0].flaky(0)"), node_id(wf, f"{wf}[0].flaky(1)")
    nodes = [
        _node(wf, wf, "Steps", "Failed", templateName="main", children=[group]),
        _node(wf, f"{wf}[0]", "StepGroup", "Failed", boundaryID=wf, children=[retry], display="[0]"),
        _node(wf, f"{wf}[0].flaky", "Retry", "Failed", templateName="flaky", boundaryID=wf,
              children=[first, second], message="No more retries left"),
        _node(wf, f"{wf}[0].flaky(0)", "Pod", "Failed", templateName="flaky", boundaryID=wf,
              nodeFlag={"retried": True}, display="flaky(0)"),
        _node(wf, f"{wf}[0].flaky(1)", "Pod", "Failed", templateName="flaky", boundaryID=wf,
              nodeFlag={"retried": True}, display="flaky(1)"),
        _node(wf, f"{wf}.onExit", "Pod", "Succeeded", templateName="cleanup", display=f"{wf}.onExit",
              nodeFlag={"hooked": True}),
    ]  # fmt: skip
    return _workflow(wf, "Failed", nodes, onExit="cleanup")


# -- formulate_retry ------------------------------------------------------------------------------
def test_retry_removes_the_failed_pod_and_what_follows_it_and_reruns_its_dag() -> None:
    workflow = _diamond()
    before = json.loads(json.dumps(workflow))
    wf = "diamond"
    a, b, c, d = (node_id(wf, f"{wf}.{t}") for t in "abcd")

    plan = formulate_retry(workflow, now=NOW)

    assert workflow == before  # the argument is left alone
    result = plan.workflow
    nodes = result["status"]["nodes"]
    assert sorted(nodes) == sorted([wf, a, c])
    assert plan.removed_nodes == sorted([b, d])
    assert plan.reset_nodes == [wf]
    root = nodes[wf]
    assert root["phase"] == "Running"
    assert root["startedAt"] == NOW
    assert "finishedAt" not in root and "message" not in root
    assert "outboundNodes" not in root  # d went
    assert nodes[a] == {**before["status"]["nodes"][a], "children": [c]}
    assert "children" not in nodes[c]
    assert nodes[c]["phase"] == "Succeeded" and nodes[c]["finishedAt"] == "2026-01-01T00:01:00Z"
    # Only the failed Pod node's pod goes; the omitted node never had one.
    assert plan.pods_to_delete == [f"diamond-fail-{b.rsplit('-', 1)[1]}"]
    status = result["status"]
    assert "phase" not in status and "message" not in status and "finishedAt" not in status
    assert status["startedAt"] == NOW
    assert status["conditions"] == [
        {"type": "PodRunning", "status": "False"},
        {"type": "Completed", "status": "False"},
    ]
    assert "workflows.argoproj.io/completed" not in result["metadata"]["labels"]
    assert "shutdown" not in result["spec"]
    assert result["metadata"]["resourceVersion"] == "42"  # the update is conditioned on it
    assert workflow_phase(result) == ""


def test_retry_resets_the_retry_node_and_step_group_and_reruns_the_exit_handler() -> None:
    wf = "steps"
    group, retry = node_id(wf, f"{wf}[0]"), node_id(wf, f"{wf}[0].flaky")
    first, second = node_id(wf, f"{wf}[0].flaky(0)"), node_id(wf, f"{wf}[0].flaky(1)")

    plan = formulate_retry(_steps_with_retries(), now=NOW)

    nodes = plan.workflow["status"]["nodes"]
    assert sorted(nodes) == sorted([wf, group, retry])
    assert all(node["phase"] == "Running" for node in nodes.values())
    assert "children" not in nodes[retry]  # both attempts go
    assert nodes[group]["children"] == [retry]
    assert "message" not in nodes[retry]
    assert plan.pods_to_delete == sorted(
        [
            emulator_pod_name(wf, f"{wf}[0].flaky(0)", "flaky"),
            emulator_pod_name(wf, f"{wf}[0].flaky(1)", "flaky"),
            emulator_pod_name(wf, f"{wf}.onExit", "cleanup"),
        ]
    )
    assert set(plan.removed_nodes) == {first, second, node_id(wf, f"{wf}.onExit")}


def test_retry_leaves_a_failure_the_dag_continued_past() -> None:
    wf = "goes-on"
    a, b = node_id(wf, f"{wf}.a"), node_id(wf, f"{wf}.b")
    workflow = _workflow(
        wf,
        "Failed",
        [
            _node(wf, wf, "DAG", "Failed", templateName="main", children=[a, b]),
            _node(wf, f"{wf}.a", "Pod", "Failed", templateName="t", boundaryID=wf, children=[b]),
            _node(wf, f"{wf}.b", "Pod", "Succeeded", templateName="t", boundaryID=wf),
        ],
    )
    plan = formulate_retry(workflow, now=NOW)
    assert plan.pods_to_delete == [] and plan.removed_nodes == []
    assert plan.workflow["status"]["nodes"] == workflow["status"]["nodes"]


def test_retry_of_a_single_pod_workflow_starts_it_afresh() -> None:
    workflow = _workflow("solo", "Error", [_node("solo", "solo", "Pod", "Error", templateName="main")])
    plan = formulate_retry(workflow, now=NOW)
    assert plan.workflow["status"]["nodes"] == {}
    assert plan.pods_to_delete == ["solo"]  # a root Pod node's pod is named as the Workflow


@pytest.mark.parametrize("phase", ["Running", "Succeeded", "Pending", ""])
def test_only_failed_or_errored_workflows_can_be_retried(phase: str) -> None:
    workflow = _diamond()
    workflow["status"]["phase"] = phase
    with pytest.raises(Invalid) as caught:
        formulate_retry(workflow)
    assert caught.value.kind == "invalid"
    assert f"cannot be retried in phase {phase or 'Pending'}" in str(caught.value)


def test_retry_and_nodes_read_compressed_nodes_and_refuse_offloaded_ones() -> None:
    workflow = _diamond()
    nodes = workflow["status"].pop("nodes")
    workflow["status"]["compressedNodes"] = base64.b64encode(
        gzip.compress(json.dumps(nodes).encode())
    ).decode()
    assert {view.id for view in workflow_nodes(workflow)} == set(nodes)
    plan = formulate_retry(workflow, now=NOW)
    assert "compressedNodes" not in plan.workflow["status"]
    assert len(plan.workflow["status"]["nodes"]) == 3

    del workflow["status"]["compressedNodes"]
    workflow["status"]["offloadNodeStatusVersion"] = "fnv:123"
    with pytest.raises(ConfigError, match="offloaded to Argo's database"):
        workflow_nodes(workflow)


# -- the node view ----------------------------------------------------------------------------------
def test_workflow_nodes_are_typed_parents_first_with_pod_names_and_template_annotations() -> None:
    workflow = _diamond()
    workflow["spec"]["templates"] = [
        {"name": "echo", "metadata": {"annotations": {"canal.io/role": "executor", "canal.io/task": "a"}}},
        {"name": "fail", "container": {"image": "alpine"}},
    ]
    views = workflow_nodes(workflow)
    assert [v.name for v in views] == ["diamond", "diamond.a", "diamond.b", "diamond.c", "diamond.d"]
    root, a, b, _, d = views
    assert (root.type, root.phase, root.pod_name, root.fulfilled) == ("DAG", "Failed", None, True)
    assert root.outbound_nodes == (d.id,)
    assert a.parameters == {"out": "hi"} and a.exit_code == 0
    assert a.template_annotations == {"canal.io/role": "executor", "canal.io/task": "a"}
    assert a.children == (b.id, views[3].id)
    assert a.started_at is not None and a.started_at.isoformat() == "2026-01-01T00:00:00+00:00"
    assert b.exit_code == 1 and b.message == "main: Error (exit code 1)" and b.template_annotations == {}
    assert b.pod_name == pod_name_for("diamond", "diamond.b", "fail")
    assert b.boundary_id == "diamond"
    assert d.type == "Skipped" and d.pod_name is None and d.phase == "Omitted"
    assert workflow_phase(workflow) == "Failed" and workflow_finished(workflow)
    assert workflow_message(workflow) == "child failed"
    assert workflow_run_id(workflow) == "run-1"


def test_pod_names_follow_argo_v2_and_v1_when_annotated() -> None:
    workflow = {"metadata": {"name": "canal-run"}}
    node = {"id": "canal-run-123", "name": "canal-run.train", "templateName": "train-exec"}
    assert pod_name(workflow, node) == emulator_pod_name("canal-run", "canal-run.train", "train-exec")
    assert pod_name(workflow, {**node, "templateName": "x" * 300}).startswith("canal-run-xxx")
    assert len(pod_name(workflow, {**node, "templateName": "x" * 300})) <= 253
    v1 = {"metadata": {"name": "canal-run", "annotations": {"workflows.argoproj.io/pod-name-format": "v1"}}}
    assert pod_name(v1, node) == "canal-run-123"


def test_run_id_key_is_the_compilers() -> None:
    assert RUN_ID_KEY == LABEL_RUN_ID == "canal.io/run-id"


# -- errors without a cluster -------------------------------------------------------------------------
def test_a_missing_kubeconfig_or_service_account_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="cannot use the kubeconfig") as caught:
        ArgoCluster.from_config(ClusterConfig(kubeconfig=str(tmp_path / "absent")))
    assert caught.value.kind == "config"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match="not running in a Kubernetes pod"):
        ArgoCluster.from_config(ClusterConfig())


def test_a_route_the_server_does_not_have_means_argo_is_not_installed() -> None:
    cluster = ArgoCluster(ApiClient(Configuration()), NS)
    exc = ApiException(status=404, reason="Not Found")
    exc.body = json.dumps(
        {"kind": "Status", "reason": "NotFound", "code": 404,
         "message": "the server could not find the requested resource", "details": {}}
    )  # fmt: skip
    error = cluster._api_error(exc, "reading Workflow w", "Workflow w")
    assert isinstance(error, ConfigError)
    assert "is Argo Workflows installed" in str(error)


def _kubeconfig(path: Path, server: str, token: str = TOKEN, namespace: str = NS) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": namespace}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_server_that_never_answers_is_unavailable_after_the_read_timeout(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections are accepted by the kernel and never answered
        port = silent.getsockname()[1]
        config = ClusterConfig(
            kubeconfig=str(_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}")),
            namespace="",
            timeout=1.0,
        )
        with ArgoCluster.from_config(config) as cluster:
            assert cluster.namespace == NS  # the context's
            with pytest.raises(Unavailable) as caught:
                cluster.get("anything")
    assert str(caught.value) == (
        f"the Kubernetes API server at http://127.0.0.1:{port} is unavailable (no answer within 1 s) "
        "while reading Workflow anything"
    )
    assert caught.value.kind == "unavailable" and caught.value.retryable


def test_from_config_leaves_the_clients_default_configuration_alone(tmp_path: Path) -> None:
    before = Configuration.get_default_copy().host
    config = ClusterConfig(kubeconfig=str(_kubeconfig(tmp_path / "kc", "http://127.0.0.1:9")))
    with ArgoCluster.from_config(config) as cluster:
        assert cluster.host == "http://127.0.0.1:9"
        assert cluster.namespace == "kubeflow"
    assert Configuration.get_default_copy().host == before


# -- against the emulator -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared_backend(envs: TaskEnvManager) -> Iterator[LocalBackend]:
    """A local backend whose steps see the session's shared directory (the retry test's switch)."""
    shared = tuple(os.environ["CANAL_STEP_SHARED_PATHS"].split(","))
    backend = LocalBackend(envs=envs, terminate_grace=1.0, sandbox=SandboxConfig(shared=shared))
    yield backend
    backend.close()


@pytest.fixture
def emulator(shared_backend: LocalBackend, tmp_path: Path) -> Iterator[Emulator]:
    """A started emulator whose executor runs pods through the module's backend."""
    emulator = Emulator(
        backend=shared_backend,
        token=TOKEN,
        work_dir=tmp_path / "cluster",
        resync=0.1,
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def kubeconfig(emulator: Emulator, tmp_path: Path) -> Path:
    """The emulator's kubeconfig (its context's namespace is not the one Canal is told to use)."""
    return emulator.write_kubeconfig(tmp_path / "kubeconfig", "default")


@pytest.fixture
def cluster(kubeconfig: Path) -> Iterator[ArgoCluster]:
    """Canal's client for the emulator, in ``NS``."""
    with ArgoCluster.from_config(ClusterConfig(kubeconfig=str(kubeconfig), namespace=NS)) as cluster:
        yield cluster


def container(name: str, *command: str) -> dict[str, Any]:
    """A container template running ``command`` on the host."""
    return {"name": name, "container": {"image": "alpine:3.20", "command": list(command)}}


def manifest(name: str, *templates: dict[str, Any], run_id: str = "run-1") -> dict[str, Any]:
    """A Workflow as Canal submits one: a fixed name and its run's id as annotation and label."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "labels": {RUN_ID_KEY: run_id}, "annotations": {RUN_ID_KEY: run_id}},
        "spec": {"entrypoint": templates[0]["name"], "templates": list(templates)},
    }


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll until ``predicate`` returns something truthy, and return it; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_finished(cluster: ArgoCluster, name: str) -> dict[str, Any]:
    """Poll the Workflow until it has finished; return it."""

    def finished() -> dict[str, Any] | None:
        workflow = cluster.get(name)
        return workflow if workflow is not None and workflow_finished(workflow) else None

    result: dict[str, Any] = wait_until(finished, f"Workflow {name} to finish")
    return result


def test_submit_and_poll_to_succeeded(cluster: ArgoCluster) -> None:
    steps = {
        "name": "main",
        "steps": [[{"name": "hello", "template": "say"}], [{"name": "again", "template": "say"}]],
    }
    result = cluster.submit(manifest("canal-run-1", steps, container("say", "echo", "hi")))
    assert result.created and result.name == "canal-run-1" and result.uid
    assert result.workflow["metadata"]["namespace"] == NS

    workflow = wait_finished(cluster, "canal-run-1")
    assert workflow_phase(workflow) == "Succeeded"
    views = {view.display_name: view for view in workflow_nodes(workflow)}
    assert views["canal-run-1"].type == "Steps"
    assert views["hello"].phase == views["again"].phase == "Succeeded"
    assert views["hello"].exit_code == 0
    pods = CoreV1Api(cluster.api_client).list_namespaced_pod(NS).items
    assert sorted(p.metadata.name for p in pods) == sorted([views["hello"].pod_name, views["again"].pod_name])
    assert [w["metadata"]["name"] for w in cluster.list_workflows()] == ["canal-run-1"]
    assert cluster.list_workflows(f"{RUN_ID_KEY}=another") == []


def test_a_duplicate_submit_of_the_same_run_is_a_success(cluster: ArgoCluster) -> None:
    wf = manifest("canal-twice", container("main", "true"))
    first = cluster.submit(wf)
    again = cluster.submit(wf)  # as after a crash between submitting and recording it
    assert first.created and not again.created
    assert again.uid == first.uid
    assert again.workflow["metadata"]["name"] == "canal-twice"


def test_the_same_name_for_another_run_is_a_clear_error(cluster: ArgoCluster) -> None:
    cluster.submit(manifest("canal-taken", container("main", "true"), run_id="run-a"))
    with pytest.raises(NameTaken) as caught:
        cluster.submit(manifest("canal-taken", container("main", "true"), run_id="run-b"))
    assert caught.value.kind == "conflict"
    assert str(caught.value) == (
        f"a Workflow named canal-taken already exists in namespace {NS} for another run "
        "(canal.io/run-id=run-a), not for run run-b: Canal does not replace it"
    )
    with pytest.raises(ValueError, match=r"carries no canal\.io/run-id"):
        cluster.submit({"metadata": {"name": "anonymous"}, "spec": {}})


def test_an_invalid_workflow_is_refused_with_the_servers_message(cluster: ArgoCluster) -> None:
    with pytest.raises(Invalid) as caught:
        cluster.submit(manifest("Not_A_Name", container("main", "true")))
    assert caught.value.kind == "invalid" and caught.value.status == 422
    assert str(caught.value).startswith("the Kubernetes API server refused creating Workflow Not_A_Name (422")
    assert "Not_A_Name" in str(caught.value).split(":", 1)[1]


def test_a_failed_node_is_visible_with_its_message_exit_code_and_log(cluster: ArgoCluster) -> None:
    dag = {
        "name": "main",
        "dag": {
            "tasks": [
                {"name": "first", "template": "ok"},
                {"name": "second", "template": "boom", "dependencies": ["first"]},
            ]
        },
    }
    cluster.submit(
        manifest(
            "canal-fails", dag, container("ok", "true"), container("boom", "sh", "-c", "echo broken; exit 3")
        )
    )
    workflow = wait_finished(cluster, "canal-fails")
    assert workflow_phase(workflow) == "Failed"
    views = {view.display_name: view for view in workflow_nodes(workflow)}
    failed = views["second"]
    assert (failed.type, failed.phase, failed.exit_code) == ("Pod", "Failed", 3)
    # Argo writes "main: Error (exit code 3)"; the emulated controller leaves off "main: ".
    assert failed.message.endswith("Error (exit code 3)")
    assert failed.pod_name is not None
    assert cluster.pod_log(failed.pod_name) == b"broken\n"
    assert views["first"].phase == "Succeeded"


def test_terminate_stops_a_running_workflow_with_a_merge_patch(cluster: ArgoCluster) -> None:
    cluster.submit(manifest("canal-long", container("main", "sleep", "300")))
    wait_until(
        lambda: any(v.phase == "Running" for v in workflow_nodes(cluster.get("canal-long") or {})),
        "the pod to run",
    )
    sent: list[tuple[str, str]] = []
    rest = cluster.api_client.rest_client
    original = rest.request

    def recording(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append((method, (kwargs.get("headers") or {}).get("Content-Type", "")))
        return original(method, url, *args, **kwargs)

    rest.request = recording
    try:
        assert cluster.terminate("canal-long") is True
    finally:
        rest.request = original
    assert ("PATCH", "application/merge-patch+json") in sent

    workflow = wait_finished(cluster, "canal-long")
    assert workflow_phase(workflow) == "Failed"
    assert workflow_message(workflow) == "Stopped with strategy 'Terminate'"
    assert cluster.terminate("canal-long") is False  # already over
    with pytest.raises(NotFound):
        cluster.terminate("never-submitted")


def test_a_deleted_workflow_reads_as_none(cluster: ArgoCluster, emulator: Emulator) -> None:
    cluster.submit(manifest("canal-gone", container("main", "true")))
    assert cluster.get("canal-gone") is not None
    assert cluster.delete("canal-gone") is True
    assert cluster.get("canal-gone") is None
    assert cluster.delete("canal-gone") is False
    cluster.submit(manifest("canal-gone-too", container("main", "true")))
    emulator.delete_workflow(NS, "canal-gone-too")  # deleted behind Canal's back
    assert cluster.get("canal-gone-too") is None


def test_pod_log_reads_from_an_offset_and_a_deleted_pod_is_not_found(
    cluster: ArgoCluster, emulator: Emulator
) -> None:
    cluster.submit(manifest("canal-log", container("main", "sh", "-c", "printf 'hello\\nworld\\n'")))
    workflow = wait_finished(cluster, "canal-log")
    assert workflow_phase(workflow) == "Succeeded"
    (view,) = workflow_nodes(workflow)
    assert view.pod_name == "canal-log"
    assert cluster.pod_log("canal-log") == b"hello\nworld\n"
    assert cluster.pod_log("canal-log", since_bytes=6) == b"world\n"
    assert cluster.pod_log("canal-log", since_bytes=6, max_bytes=3) == b"wor"
    assert cluster.pod_log("canal-log", since_bytes=100) == b""

    emulator.delete_pod(NS, "canal-log")
    with pytest.raises(NotFound) as caught:
        cluster.pod_log("canal-log")
    assert caught.value.kind == "not_found" and caught.value.status == 404
    assert str(caught.value) == f"pod canal-log does not exist in namespace {NS}"


def test_wrong_credentials_are_an_auth_error(emulator: Emulator, tmp_path: Path) -> None:
    config = ClusterConfig(kubeconfig=str(_kubeconfig(tmp_path / "kc", emulator.url, token="stale")))
    with ArgoCluster.from_config(config) as cluster, pytest.raises(AuthError) as caught:
        cluster.get("anything")
    assert caught.value.kind == "auth" and caught.value.status == 401
    assert str(caught.value).startswith(
        f"the Kubernetes API server at {emulator.url} refused Canal's credentials (401 Unauthorized) "
        "while reading Workflow anything"
    )


def test_injected_401_403_and_503(cluster: ArgoCluster, emulator: Emulator) -> None:
    emulator.fail_requests(401, 1)
    with pytest.raises(AuthError, match=r"refused Canal's credentials \(401 Unauthorized\)"):
        cluster.list_workflows()
    emulator.fail_requests(403, 1)
    with pytest.raises(AuthError, match=r"forbade listing Workflows \(403 Forbidden: forbidden") as caught:
        cluster.list_workflows()
    assert caught.value.status == 403
    emulator.fail_requests(503, 1)
    with pytest.raises(Unavailable) as unavailable:
        cluster.submit(manifest("canal-later", container("main", "true")))
    assert str(unavailable.value) == (
        f"the Kubernetes API server at {emulator.url} is unavailable (503 Service Unavailable: the server "
        "is currently unable to handle the request) while creating Workflow canal-later"
    )
    assert unavailable.value.retryable and unavailable.value.kind == "unavailable"
    assert cluster.submit(manifest("canal-later", container("main", "true"))).created  # it came back


@pytest.mark.timeout(300)
def test_a_stopped_server_is_unavailable_promptly(shared_backend: LocalBackend, tmp_path: Path) -> None:
    emulator = Emulator(backend=shared_backend, token=TOKEN).start()
    try:
        config = ClusterConfig(kubeconfig=str(emulator.write_kubeconfig(tmp_path / "kc", NS)), namespace=NS)
        url = emulator.url
    finally:
        emulator.stop()
    with ArgoCluster.from_config(config) as cluster, pytest.raises(Unavailable) as caught:
        cluster.get("anything")
    assert str(caught.value) == (
        f"the Kubernetes API server at {url} is unavailable (connection refused) "
        "while reading Workflow anything"
    )
    assert caught.value.status is None


def test_retry_runs_the_failed_step_again_and_keeps_the_succeeded_one(
    cluster: ArgoCluster, emulator: Emulator, step_shared: Path
) -> None:
    switch = step_shared / "go"
    steps = {
        "name": "main",
        "steps": [[{"name": "first", "template": "ok"}], [{"name": "second", "template": "gated"}]],
    }
    gated = container(
        "gated", "sh", "-c", f"if [ -e {switch} ]; then echo passed; else echo blocked; exit 1; fi"
    )
    cluster.submit(manifest("canal-again", steps, container("ok", "echo", "one"), gated))
    failed = wait_finished(cluster, "canal-again")
    assert workflow_phase(failed) == "Failed"
    before = {view.display_name: view for view in workflow_nodes(failed)}
    assert before["second"].phase == "Failed"
    second_pod = before["second"].pod_name
    assert second_pod is not None and cluster.pod_log(second_pod) == b"blocked\n"
    first_uid = next(p for p in emulator.pods(NS) if p["metadata"]["name"] == before["first"].pod_name)[
        "metadata"
    ]["uid"]

    cluster.submit(manifest("canal-busy", container("main", "sleep", "300")))
    wait_until(lambda: workflow_phase(cluster.get("canal-busy") or {}) == "Running", "canal-busy to run")
    with pytest.raises(Invalid, match="cannot be retried in phase Running"):
        cluster.retry("canal-busy")

    switch.touch()
    retried = cluster.retry("canal-again")
    assert workflow_phase(retried) == ""
    assert "workflows.argoproj.io/completed" not in retried["metadata"].get("labels", {})
    assert before["second"].id not in retried["status"]["nodes"]

    done = wait_finished(cluster, "canal-again")
    assert workflow_phase(done) == "Succeeded", workflow_message(done)
    after = {view.display_name: view for view in workflow_nodes(done)}
    assert after["second"].phase == "Succeeded"
    assert after["second"].id == before["second"].id  # the same node, run again
    assert after["first"].started_at == before["first"].started_at  # not run again
    assert cluster.pod_log(second_pod) == b"passed\n"
    pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in emulator.pods(NS)}
    assert pods[before["first"].pod_name] == first_uid
