"""Workflows run by the emulator's controller and kubelet, read back through the real client."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
from kubernetes.client.exceptions import ApiException

from apps.backends.argo.emulator.naming import fnv32a, node_id, pod_name
from tests.backends.argo.emulator.conftest import NS, TOKEN, Cluster, container, make_workflow, wait_until


def test_argo_names() -> None:
    # Node ids as they appear in Argo's own controller test data (workflow/controller/dag_test.go).
    assert node_id("wf-retry-pol", "wf-retry-pol[0].run-dag") == "wf-retry-pol-2616013767"
    assert node_id("wf-retry-pol", "wf-retry-pol[0].run-dag.A(0)") == "wf-retry-pol-3148069997"
    assert (
        node_id("exit-handler-bug-example", "exit-handler-bug-example.step-2")
        == "exit-handler-bug-example-3054913383"
    )
    assert node_id("wf", "wf") == "wf"
    # Pod names v2: <workflow>-<template>-<fnv32a(node name)>, the prefix cut to fit 253 characters.
    assert pod_name("wf-retry-pol", "wf-retry-pol[0].run-dag.A(0)", "a") == "wf-retry-pol-a-3148069997"
    assert pod_name("wf", "wf", "main") == "wf"
    assert pod_name("w" * 300, "w[0].a", "t") == "w" * 242 + f"-{fnv32a('w[0].a')}"


def test_echo_hello_succeeds_with_its_node_pod_and_log(cluster: Cluster) -> None:
    created = cluster.submit(make_workflow("hello", container("main", "echo", "hello")))
    workflow = cluster.wait_phase("hello")
    status = workflow["status"]
    assert status["phase"] == "Succeeded"
    assert status["startedAt"] <= status["finishedAt"]
    assert status["progress"] == "1/1"
    assert workflow["metadata"]["labels"]["workflows.argoproj.io/completed"] == "true"
    assert workflow["metadata"]["labels"]["workflows.argoproj.io/phase"] == "Succeeded"
    node = status["nodes"]["hello"]
    assert node["type"] == "Pod" and node["phase"] == "Succeeded"
    assert node["name"] == "hello" and node["templateName"] == "main"
    assert node["outputs"] == {"exitCode": "0"}

    [pod] = cluster.pods("hello")
    assert pod.metadata.name == "hello"  # a one-pod Workflow's pod is named after it, as in Argo
    assert pod.metadata.annotations["workflows.argoproj.io/node-name"] == "hello"
    assert pod.metadata.annotations["workflows.argoproj.io/node-id"] == "hello"
    assert pod.metadata.owner_references[0].uid == created["metadata"]["uid"]
    assert pod.status.phase == "Succeeded"
    main = next(c for c in pod.status.container_statuses if c.name == "main")
    assert main.state.terminated.exit_code == 0 and main.state.terminated.reason == "Completed"
    assert [c.name for c in pod.spec.containers] == ["wait", "main"]
    assert pod.spec.containers[1].command == ["echo", "hello"]
    assert cluster.log("hello") == "hello\n"


def test_log_needs_a_container_name(cluster: Cluster) -> None:
    cluster.submit(make_workflow("which", container("main", "true")))
    cluster.wait_phase("which")
    with pytest.raises(ApiException) as caught:
        cluster.core.read_namespaced_pod_log("which", NS)
    assert caught.value.status == 400
    assert "a container name must be specified for pod which, choose one of: [wait main]" in caught.value.body
    assert cluster.core.read_namespaced_pod_log("which", NS, container="wait") == ""


def test_log_tail_and_limit(cluster: Cluster) -> None:
    cluster.submit(make_workflow("lines", container("main", "sh", "-c", "printf 'one\\ntwo\\nthree\\n'")))
    cluster.wait_phase("lines", "Succeeded")
    assert cluster.core.read_namespaced_pod_log("lines", NS, container="main", tail_lines=2) == "two\nthree\n"
    assert cluster.core.read_namespaced_pod_log("lines", NS, container="main", limit_bytes=5) == "one\nt"
    assert cluster.core.read_namespaced_pod_log("lines", NS, container="main", since_seconds=3600) != ""
    url = f"{cluster.emulator.url}/api/v1/namespaces/{NS}/pods/lines/log?container=main&tailLines=two"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["reason"] == "BadRequest"


def test_steps_run_in_order_with_argo_nodes_and_pod_names(cluster: Cluster) -> None:
    manifest = make_workflow(
        "steps",
        {
            "name": "main",
            "steps": [[{"name": "a", "template": "say-a"}], [{"name": "b", "template": "say-b"}]],
        },
        container("say-a", "echo", "A"),
        container("say-b", "echo", "B"),
    )
    cluster.submit(manifest)
    status = cluster.wait_phase("steps")["status"]
    assert status["phase"] == "Succeeded" and status["progress"] == "2/2"
    nodes = status["nodes"]
    by_name = {node["name"]: node for node in nodes.values()}
    assert set(by_name) == {"steps", "steps[0]", "steps[0].a", "steps[1]", "steps[1].b"}
    assert by_name["steps"]["type"] == "Steps"
    assert by_name["steps[0]"]["type"] == "StepGroup" and by_name["steps[0]"]["displayName"] == "[0]"
    a, b = by_name["steps[0].a"], by_name["steps[1].b"]
    assert a["id"] == node_id("steps", "steps[0].a") and a["displayName"] == "a"
    assert all(node["phase"] == "Succeeded" for node in nodes.values())
    assert a["finishedAt"] <= b["startedAt"]
    assert by_name["steps"]["children"] == [by_name["steps[0]"]["id"]]
    assert a["children"] == [by_name["steps[1]"]["id"]]  # Argo chains a step to the next group
    pods = {pod.metadata.name: pod for pod in cluster.pods("steps")}
    assert set(pods) == {pod_name("steps", "steps[0].a", "say-a"), pod_name("steps", "steps[1].b", "say-b")}
    assert cluster.log(pod_name("steps", "steps[1].b", "say-b")) == "B\n"


def test_dag_follows_dependencies(cluster: Cluster) -> None:
    dag = {
        "name": "main",
        "dag": {
            "tasks": [
                {"name": "last", "template": "echo", "depends": "left && right"},
                {"name": "left", "template": "echo", "dependencies": ["first"]},
                {"name": "right", "template": "echo", "dependencies": ["first"]},
                {"name": "first", "template": "echo"},
            ]
        },
    }
    cluster.submit(make_workflow("diamond", dag, container("echo", "true")))
    status = cluster.wait_phase("diamond")["status"]
    assert status["phase"] == "Succeeded"
    nodes = {node["displayName"]: node for node in status["nodes"].values()}
    assert nodes["diamond"]["type"] == "DAG"
    assert nodes["first"]["finishedAt"] <= nodes["left"]["startedAt"]
    assert nodes["right"]["finishedAt"] <= nodes["last"]["startedAt"]
    assert nodes["diamond"]["children"] == [nodes["first"]["id"]]
    assert sorted(nodes["first"]["children"]) == sorted([nodes["left"]["id"], nodes["right"]["id"]])
    assert nodes["diamond"]["outboundNodes"] == [nodes["last"]["id"]]


def test_failing_step_fails_the_workflow_with_the_node_message(cluster: Cluster) -> None:
    cluster.submit(make_workflow("fails", container("main", "sh", "-c", "echo oops; exit 3")))
    workflow = cluster.wait_phase("fails")
    status = workflow["status"]
    assert status["phase"] == "Failed"
    node = status["nodes"]["fails"]
    assert node["phase"] == "Failed"
    assert node["message"] == "Error (exit code 3)"
    assert node["outputs"] == {"exitCode": "3"}
    assert status["message"] == "Error (exit code 3)"
    assert cluster.log("fails") == "oops\n"
    [pod] = cluster.pods("fails")
    assert pod.status.phase == "Failed"


def test_a_failed_step_stops_the_steps_after_it(cluster: Cluster) -> None:
    manifest = make_workflow(
        "stops",
        {
            "name": "main",
            "steps": [[{"name": "bad", "template": "bad"}], [{"name": "never", "template": "ok"}]],
        },
        container("bad", "false"),
        container("ok", "true"),
    )
    cluster.submit(manifest)
    status = cluster.wait_phase("stops")["status"]
    assert status["phase"] == "Failed"
    by_name = {node["name"]: node for node in status["nodes"].values()}
    assert "stops[1].never" not in by_name
    assert by_name["stops[0].bad"]["message"] == "Error (exit code 1)"
    group = by_name["stops[0]"]
    assert (
        group["phase"] == "Failed" and group["message"] == f"child '{by_name['stops[0].bad']['id']}' failed"
    )
    assert status["message"] == by_name["stops"]["message"] == group["message"]  # as the interpreter says
    assert len(cluster.pods("stops")) == 1


def test_a_missing_program_is_a_start_error(cluster: Cluster) -> None:
    cluster.submit(make_workflow("missing", container("main", "no-such-program-here")))
    status = cluster.wait_phase("missing")["status"]
    assert status["phase"] == "Error"  # the interpreter's verdict for a pod that could not start
    message = status["nodes"]["missing"]["message"]
    assert "executable 'no-such-program-here' was not found" in message
    [pod] = cluster.pods("missing")
    main = next(c for c in pod.status.container_statuses if c.name == "main")
    assert main.state.terminated.reason == "StartError" and main.state.terminated.exit_code == 128


def test_what_the_interpreter_refuses_is_an_error(cluster: Cluster) -> None:
    manifest = make_workflow(
        "refused", {"name": "main", "resource": {"action": "create", "manifest": "kind: ConfigMap"}}
    )
    cluster.submit(manifest)
    status = cluster.wait_phase("refused")["status"]
    assert status["phase"] == "Error"
    assert status["message"].startswith(
        "the emulator cannot run this Workflow: template 'main' (resource): resource templates create"
    )
    assert cluster.pods("refused") == []


def test_a_missing_input_parameter_is_an_error(cluster: Cluster) -> None:
    manifest = make_workflow("params", container("main", "echo", "{{inputs.parameters.x}}"))
    manifest["spec"]["templates"][0]["inputs"] = {"parameters": [{"name": "x"}]}
    cluster.submit(manifest)
    status = cluster.wait_phase("params")["status"]
    assert status["phase"] == "Error"
    assert status["message"] == "inputs.parameters.x was not supplied"


def test_script_template(cluster: Cluster) -> None:
    script = {
        "name": "main",
        "script": {"image": "python:3.12", "command": ["sh"], "source": "echo from-script\n"},
    }
    cluster.submit(make_workflow("script", script))
    assert cluster.wait_phase("script")["status"]["phase"] == "Succeeded"
    assert cluster.log("script") == "from-script\n"


def test_follow_streams_the_log_until_the_container_ends(cluster: Cluster) -> None:
    # The step waits for a file in its own working directory, which the test creates.
    script = "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second"
    cluster.submit(make_workflow("follow", container("main", "sh", "-c", script)))
    cluster.running_pod("follow")
    wait_until(lambda: cluster.log("follow") == "first\n", "the first line")
    response = cluster.core.read_namespaced_pod_log(
        "follow", NS, container="main", follow=True, _preload_content=False
    )
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(response.stream(64)))
    reader.start()
    (cluster.pod_root("follow") / "go").touch()
    reader.join(120)
    assert not reader.is_alive()
    assert b"".join(chunks) == b"first\nsecond\n"
    assert cluster.wait_phase("follow")["status"]["phase"] == "Succeeded"


def test_pods_list_and_read_as_typed_models(cluster: Cluster) -> None:
    cluster.submit(make_workflow("typed", container("main", "true")))
    cluster.wait_phase("typed")
    pod = cluster.core.read_namespaced_pod("typed", NS)
    assert pod.metadata.labels["workflows.argoproj.io/workflow"] == "typed"
    everywhere = cluster.core.list_pod_for_all_namespaces(
        label_selector="workflows.argoproj.io/workflow=typed"
    )
    assert [p.metadata.name for p in everywhere.items] == ["typed"]
    by_phase = cluster.core.list_namespaced_pod(NS, field_selector="status.phase=Succeeded")
    assert [p.metadata.name for p in by_phase.items] == ["typed"]
