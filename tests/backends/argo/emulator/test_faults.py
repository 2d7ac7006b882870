"""Cluster faults through the real client: shutdown, deletions, a controller restart, 401 and 503."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import kubernetes
import pytest
import yaml
from kubernetes.client import CustomObjectsApi, VersionApi
from kubernetes.client.exceptions import ApiException

from apps.backends.argo.emulator import Emulator
from apps.backends.local import LocalBackend
from tests.backends.argo.emulator.conftest import (
    GROUP,
    NS,
    PLURAL,
    TOKEN,
    VERSION,
    Cluster,
    container,
    make_workflow,
    status_body,
    wait_until,
)
from tests.backends.conftest import process_alive

SLEEP = container("main", "sleep", "300")


def _wait_gone(pid: int) -> None:
    wait_until(lambda: not process_alive(pid), f"process {pid} to end")


def test_terminate_ends_a_running_workflow_and_kills_its_process(cluster: Cluster) -> None:
    cluster.submit(make_workflow("sleepy", SLEEP))
    pod = cluster.running_pod("sleepy")
    pid = cluster.emulator.pod_pid(NS, pod.metadata.name)
    assert pid is not None and process_alive(pid)

    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "sleepy", {"spec": {"shutdown": "Terminate"}}
    )
    status = cluster.wait_phase("sleepy")["status"]
    assert status["phase"] == "Failed"
    assert status["message"] == "Stopped with strategy 'Terminate'"  # Argo's operator.go wording
    node = status["nodes"]["sleepy"]
    assert node["phase"] == "Failed"
    assert node["message"] == "workflow shutdown with strategy:  Terminate"  # sic: two spaces in Argo
    _wait_gone(pid)
    # The pod stays, Failed, with its log readable, as after Argo terminates containers.
    wait_until(lambda: cluster.pods("sleepy")[0].status.phase == "Failed", "the pod to end Failed")
    assert cluster.log("sleepy") == ""


def test_deleting_a_running_workflow_kills_its_pods_and_their_logs(cluster: Cluster) -> None:
    cluster.submit(make_workflow("doomed", SLEEP))
    pod = cluster.running_pod("doomed")
    pid = cluster.emulator.pod_pid(NS, pod.metadata.name)
    assert pid is not None

    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "doomed")
    with pytest.raises(ApiException) as caught:
        cluster.get("doomed")
    assert caught.value.status == 404
    assert cluster.pods("doomed") == []  # garbage-collected with their owner
    with pytest.raises(ApiException) as caught:
        cluster.log(pod.metadata.name)
    assert caught.value.status == 404
    _wait_gone(pid)


def test_deleting_a_running_pod_errors_its_node(cluster: Cluster) -> None:
    cluster.submit(make_workflow("lost-pod", SLEEP))
    pod = cluster.running_pod("lost-pod")

    def node_phase() -> str:
        nodes = (cluster.get("lost-pod").get("status") or {}).get("nodes") or {}
        return str(nodes.get("lost-pod", {}).get("phase"))

    # Argo errors only a node it has seen running; a Pending node's missing pod is created again.
    wait_until(lambda: node_phase() == "Running", "the node to be Running in the stored status")
    pid = cluster.emulator.pod_pid(NS, pod.metadata.name)
    assert pid is not None

    deleted = cluster.core.delete_namespaced_pod(pod.metadata.name, NS)
    assert deleted.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as caught:
        cluster.log(pod.metadata.name)
    assert caught.value.status == 404
    status = cluster.wait_phase("lost-pod")["status"]
    assert status["phase"] == "Error"
    assert status["nodes"]["lost-pod"]["message"] == "pod deleted"  # Argo's message
    _wait_gone(pid)


def test_deleting_a_finished_pod_takes_its_log(cluster: Cluster) -> None:
    cluster.submit(make_workflow("done", container("main", "echo", "kept?")))
    cluster.wait_phase("done", "Succeeded")
    assert cluster.log("done") == "kept?\n"
    cluster.emulator.delete_pod(NS, "done")  # the Python fault API
    with pytest.raises(ApiException) as caught:
        cluster.log("done")
    assert caught.value.status == 404
    assert status_body(caught.value)["message"] == 'pods "done" not found'
    assert cluster.get("done")["status"]["phase"] == "Succeeded"  # a finished Workflow stays finished


def test_controller_restart_mid_run_continues_from_the_stored_status(cluster: Cluster) -> None:
    wait_for_file = "while [ ! -e go ]; do sleep 0.05; done; echo one"
    manifest = make_workflow(
        "restarted",
        {
            "name": "main",
            "steps": [[{"name": "one", "template": "one"}], [{"name": "two", "template": "two"}]],
        },
        container("one", "sh", "-c", wait_for_file),
        container("two", "echo", "two"),
    )
    cluster.submit(manifest)
    pod = cluster.running_pod("restarted")
    one = pod.metadata.annotations["workflows.argoproj.io/node-id"]
    # The pod may run before the controller has stored the status that created it: wait for both.
    before = wait_until(
        lambda: (s := cluster.get("restarted").get("status") or {}).get("nodes", {}).get(one) and s,
        "the first node in the stored status",
    )

    cluster.emulator.restart_controller()
    assert cluster.emulator.controller is not None and cluster.emulator.controller.running
    (cluster.pod_root(pod.metadata.name) / "go").touch()

    status = cluster.wait_phase("restarted")["status"]
    assert status["phase"] == "Succeeded"
    assert status["startedAt"] == before["startedAt"]
    by_name = {node["name"]: node for node in status["nodes"].values()}
    assert by_name["restarted[0].one"]["id"] == one
    assert by_name["restarted[0].one"]["startedAt"] == before["nodes"][one]["startedAt"]
    assert by_name["restarted[1].two"]["phase"] == "Succeeded"
    assert len(cluster.pods("restarted")) == 2  # the running pod was not started twice


def test_a_stopped_controller_advances_nothing_until_it_starts(cluster: Cluster) -> None:
    cluster.submit(
        make_workflow("paused", container("main", "sh", "-c", "while [ ! -e go ]; do sleep 0.05; done"))
    )
    pod = cluster.running_pod("paused")
    cluster.emulator.stop_controller()
    (cluster.pod_root(pod.metadata.name) / "go").touch()
    # The pod ends (the kubelet runs on) but nobody records it on the Workflow.
    wait_until(lambda: cluster.pods("paused")[0].status.phase == "Succeeded", "the pod to end")
    assert cluster.get("paused")["status"]["phase"] == "Running"
    cluster.emulator.start_controller()
    assert cluster.wait_phase("paused")["status"]["phase"] == "Succeeded"


def test_injected_401_for_the_next_requests(cluster: Cluster) -> None:
    cluster.emulator.fail_requests(401, 2)
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            cluster.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
        assert caught.value.status == 401
        assert status_body(caught.value)["reason"] == "Unauthorized"
    assert cluster.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"] == []


def test_injected_503_until_cleared(cluster: Cluster) -> None:
    cluster.emulator.fail_requests(503, None)
    for _ in range(3):
        with pytest.raises(ApiException) as caught:
            cluster.submit(make_workflow("refused", container("main", "true")))
        assert caught.value.status == 503
        assert status_body(caught.value)["reason"] == "ServiceUnavailable"
    cluster.emulator.clear_faults()
    cluster.submit(make_workflow("accepted", container("main", "true")))
    with pytest.raises(ApiException) as caught:
        cluster.get("refused")  # nothing was written while failing
    assert caught.value.status == 404


def _admin(emulator: Emulator, method: str, action: str, body: object = None, token: str = TOKEN) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{emulator.url}/_emulator/{action}", data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_admin_endpoints_inject_faults_and_restart_the_controller(cluster: Cluster) -> None:
    emulator = cluster.emulator
    assert _admin(emulator, "POST", "faults", {"code": 503, "count": 1}) == {
        "code": 503,
        "remaining": 1,
        "answered": 0,
    }
    with pytest.raises(ApiException) as caught:
        VersionApi(cluster.api).get_code()
    assert caught.value.status == 503
    assert VersionApi(cluster.api).get_code().major == "1"

    _admin(emulator, "POST", "faults", {"code": 401, "count": None})
    with pytest.raises(ApiException):
        VersionApi(cluster.api).get_code()
    _admin(emulator, "DELETE", "faults")
    VersionApi(cluster.api).get_code()

    controller = emulator.controller
    assert _admin(emulator, "POST", "controller/restart") == {"done": "controller/restart"}
    assert emulator.controller is controller and controller is not None and controller.running
    assert _admin(emulator, "GET", "state") == {
        "controller": True,
        "faults": {"code": None, "remaining": None, "answered": 2},
        "workflows": 0,
        "pods": 0,
    }
    with pytest.raises(urllib.error.HTTPError) as refused:
        _admin(emulator, "GET", "state", token="wrong")
    assert refused.value.code == 401


def test_state_dir_keeps_objects_and_logs_across_emulator_restarts(
    backend: LocalBackend, tmp_path: Path
) -> None:
    if not backend.sandbox.active:
        pytest.skip("Argo pods need the step sandbox: " + backend.sandbox.status().summary())
    state = tmp_path / "state"

    def start() -> Emulator:
        return Emulator(backend=backend, token=TOKEN, state_dir=state).start()

    emulator = start()
    try:
        config = emulator.write_kubeconfig(tmp_path / "config", NS)
        with kubernetes.config.new_client_from_config(config_file=str(config)) as api:
            cluster = Cluster(emulator, api)
            created = cluster.submit(make_workflow("durable", container("main", "echo", "persisted")))
            cluster.wait_phase("durable", "Succeeded")
    finally:
        emulator.stop()
    emulator = start()
    try:
        config = emulator.write_kubeconfig(tmp_path / "config", NS)
        with kubernetes.config.new_client_from_config(config_file=str(config)) as api:
            cluster = Cluster(emulator, api)
            again = cluster.get("durable")
            assert again["metadata"]["uid"] == created["metadata"]["uid"]
            assert again["status"]["phase"] == "Succeeded"
            assert cluster.log("durable") == "persisted\n"
            newer = cluster.submit(make_workflow("after", container("main", "true")))
            assert int(newer["metadata"]["resourceVersion"]) > int(again["metadata"]["resourceVersion"])
    finally:
        emulator.stop()


def test_started_by_hand(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.backends.argo.emulator", "--port", "0", "--token", "by-hand",
         "--namespace", NS, "--kubeconfig-out", str(config), "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[4],
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        output = "".join(lines)
        assert "listens on http://127.0.0.1:" in output, output
        assert f"CANAL_KUBECONFIG={config}" in output
        assert oct(config.stat().st_mode & 0o777) == "0o600"
        assert yaml.safe_load(config.read_text())["contexts"][0]["context"]["namespace"] == NS
        with kubernetes.config.new_client_from_config(config_file=str(config)) as api:
            assert VersionApi(api).get_code().major == "1"
            assert (
                CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"] == []
            )
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(120) == 0
        if process.stdout is not None:
            process.stdout.close()
    assert (tmp_path / "state" / "objects.json").is_file()
    assert os.path.isdir(tmp_path / "state")
