"""An emulated cluster per test, and real ``kubernetes`` clients configured from its kubeconfig."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from apps.backends.argo.emulator import Emulator
from apps.backends.local import LocalBackend

NS = "canal-test"
GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflows"
TOKEN = "emulator-test-token"
# Generous: the machine is shared and slow at times; the tests wait on conditions, never on durations.
TIMEOUT = 120.0


def make_workflow(
    name: str, *templates: dict[str, Any], entrypoint: str | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Workflow manifest."""
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": metadata,
        "spec": {"entrypoint": entrypoint or templates[0]["name"], "templates": list(templates)},
    }


def container(name: str, *command: str) -> dict[str, Any]:
    """A container template running ``command`` on the host."""
    return {"name": name, "container": {"image": "alpine:3.20", "command": list(command)}}


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


def status_body(exc: ApiException) -> dict[str, Any]:
    """The ``kind: Status`` body of an API error."""
    body: dict[str, Any] = json.loads(exc.body)
    return body


class Cluster:
    """Shortcuts over the real clients for one namespace."""

    def __init__(self, emulator: Emulator, api: ApiClient) -> None:
        self.emulator = emulator
        self.api = api
        self.custom = CustomObjectsApi(api)
        self.core = CoreV1Api(api)

    def submit(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create a Workflow."""
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, manifest
        )
        return created

    def get(self, name: str) -> dict[str, Any]:
        """Read a Workflow."""
        workflow: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)
        return workflow

    def wait_phase(self, name: str, *phases: str) -> dict[str, Any]:
        """Wait until the Workflow's phase is one of ``phases``; return it."""
        wanted = phases or ("Succeeded", "Failed", "Error")

        def reached() -> dict[str, Any] | None:
            workflow = self.get(name)
            return workflow if (workflow.get("status") or {}).get("phase") in wanted else None

        result: dict[str, Any] = wait_until(reached, f"workflow {name} to reach {wanted}")
        return result

    def pods(self, workflow: str) -> list[Any]:
        """The Workflow's pods, through the API."""
        listed = self.core.list_namespaced_pod(
            NS, label_selector=f"workflows.argoproj.io/workflow={workflow}"
        )
        return list(listed.items)

    def running_pod(self, workflow: str) -> Any:
        """Wait until one of the Workflow's pods runs; return it."""

        def running() -> Any:
            return next((p for p in self.pods(workflow) if p.status.phase == "Running"), None)

        return wait_until(running, f"a running pod of {workflow}")

    def pod_root(self, pod: str) -> Path:
        """The host directory a pod's main container sees as ``/`` (where ``LocalPodRunner`` puts it)."""
        return self.emulator.pod_workdir(NS, pod) / "root"

    def log(self, pod: str) -> str:
        """The main container's log."""
        text: str = self.core.read_namespaced_pod_log(pod, NS, container="main")
        return text


@pytest.fixture
def emulator(backend: LocalBackend, tmp_path: Path) -> Iterator[Emulator]:
    """A started emulator whose default executor (the interpreter) runs pods with the session's backend."""
    if not backend.sandbox.active:
        pytest.skip("Argo pods need the step sandbox: " + backend.sandbox.status().summary())
    emulator = Emulator(backend=backend, token=TOKEN, work_dir=tmp_path / "cluster", resync=0.1)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def kubeconfig(emulator: Emulator, tmp_path: Path) -> Path:
    """The kubeconfig the emulator writes, with ``NS`` as its namespace."""
    return emulator.write_kubeconfig(tmp_path / "kubeconfig", NS)


@pytest.fixture
def api(kubeconfig: Path) -> Iterator[ApiClient]:
    """A real ``kubernetes`` ApiClient loaded from that kubeconfig."""
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cluster(emulator: Emulator, api: ApiClient) -> Cluster:
    """The emulator seen through the real clients."""
    return Cluster(emulator, api)
