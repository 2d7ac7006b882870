"""The emulated node: runs each pod's program in a thread, records the pod's status, keeps its log.

Pods belong to the cluster, not to the controller: they keep running while the
controller restarts, as on Kubernetes. A deleted pod is killed and its log and
working directory removed with it; a killed pod (Workflow shutdown) ends
Failed and keeps its log until it is deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps.backends.argo.emulator.errors import ApiError
from apps.backends.argo.emulator.naming import (
    ANNOTATION_NODE_ID,
    ANNOTATION_NODE_NAME,
    ANNOTATION_OUTPUTS,
    LABEL_COMPLETED,
    LABEL_WORKFLOW,
    now_rfc3339,
    pod_name,
)
from apps.backends.argo.emulator.protocol import PodContext, PodOutcome, PodProgram, PodRequest, PodView
from apps.backends.argo.emulator.store import PODS, WORKFLOWS, Event, Obj, Store

__all__ = ["MAIN", "WAIT", "Kubelet", "WorkflowPods", "pod_view"]

logger = logging.getLogger(__name__)

MAIN = "main"
WAIT = "wait"
WAIT_IMAGE = "quay.io/argoproj/argoexec:canal-emulator"


@dataclass
class _Running:
    """A pod whose program is running (or about to)."""

    uid: str
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    pid: int | None = None
    deleted: bool = False


def _container_status(name: str, image: str, state: Obj) -> Obj:
    running = "running" in state
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": running,
        "started": running,
        "restartCount": 0,
        "state": state,
    }


def _exit_status(code: int | None) -> int:
    if code is None:
        return 128  # what a container runtime reports when the command cannot start
    return 128 - code if code < 0 else code


def pod_view(pod: Mapping[str, Any]) -> PodView:
    """What an executor needs to know of a stored pod."""
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    view: dict[str, Any] = {}
    for container in status.get("containerStatuses") or []:
        if container.get("name") != MAIN:
            continue
        state = container.get("state") or {}
        if "terminated" in state:
            terminated = state["terminated"]
            view = {
                "exit_code": terminated.get("exitCode"),
                "reason": terminated.get("reason", ""),
                "message": terminated.get("message", ""),
                "started_at": terminated.get("startedAt"),
                "finished_at": terminated.get("finishedAt"),
            }
        elif "running" in state:
            view = {"started_at": state["running"].get("startedAt")}
    outputs = (metadata.get("annotations") or {}).get(ANNOTATION_OUTPUTS)
    return PodView(
        name=metadata.get("name", ""),
        node_id=(metadata.get("annotations") or {}).get(ANNOTATION_NODE_ID, ""),
        phase=status.get("phase", "Pending"),
        outputs=json.loads(outputs) if outputs else None,
        pod_reason=status.get("reason", ""),
        pod_message=status.get("message", ""),
        **view,
    )


class Kubelet:
    """Runs the pods the controller creates; ``root`` holds their working directories and logs."""

    def __init__(self, store: Store, root: Path, *, node_name: str = "canal-emulator") -> None:
        self.store = store
        self.root = root
        self.node_name = node_name
        self._running: dict[tuple[str, str], _Running] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._unsubscribe = store.subscribe(self._on_event)

    # -- where a pod's files are ---------------------------------------------
    def tenant_dir(self, namespace: str) -> Path:
        """The namespace's directory: every pod's working directory is inside it."""
        return self.root / "namespaces" / namespace

    def workdir(self, namespace: str, name: str) -> Path:
        """The pod's working directory."""
        return self.tenant_dir(namespace) / name

    def log_path(self, namespace: str, name: str, container: str = MAIN) -> Path:
        """The file holding a container's log (empty for the wait container)."""
        return self.root / "logs" / namespace / name / f"{container}.log"

    def pid(self, namespace: str, name: str) -> int | None:
        """The host pid of the pod's process while it runs (for tests)."""
        with self._lock:
            running = self._running.get((namespace, name))
            return running.pid if running else None

    # -- life cycle ----------------------------------------------------------
    def create_pod(self, workflow: Mapping[str, Any], request: PodRequest) -> Obj:
        """Store the pod of ``request`` for ``workflow`` and start its program."""
        if self._closed:
            raise ApiError(503, "ServiceUnavailable", "the emulated node is shutting down")
        metadata = workflow.get("metadata") or {}
        namespace, workflow_name = metadata["namespace"], metadata["name"]
        name = request.pod_name or pod_name(workflow_name, request.node_name, request.template_name)
        with self._lock:
            if (namespace, name) in self._running:
                # A deleted pod of that name still terminates: Kubernetes keeps its name until it is gone.
                raise ApiError.already_exists(PODS, name)
        main = {key: value for key, value in request.container.items() if key != "source"}
        main["name"] = MAIN
        main.setdefault("image", "")
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {LABEL_WORKFLOW: workflow_name, LABEL_COMPLETED: "false", **request.labels},
                "annotations": {
                    ANNOTATION_NODE_NAME: request.node_name,
                    ANNOTATION_NODE_ID: request.node_id,
                    "kubectl.kubernetes.io/default-container": MAIN,
                    **request.annotations,
                },
                "ownerReferences": [
                    {
                        "apiVersion": WORKFLOWS.api_version,
                        "kind": WORKFLOWS.kind,
                        "name": workflow_name,
                        "uid": metadata["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "nodeName": self.node_name,
                "restartPolicy": "Never",
                "containers": [
                    {"name": WAIT, "image": WAIT_IMAGE, "command": ["argoexec"], "args": ["wait"]},
                    main,
                ],
            },
            "status": {
                "phase": "Pending",
                "qosClass": "BestEffort",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [
                    _container_status(WAIT, WAIT_IMAGE, {"waiting": {"reason": "ContainerCreating"}}),
                    _container_status(MAIN, main["image"], {"waiting": {"reason": "ContainerCreating"}}),
                ],
            },
        }
        stored = self.store.create(PODS, namespace, pod)
        uid = stored["metadata"]["uid"]
        owner = self.store.find(WORKFLOWS, namespace, workflow_name)
        if owner is None or owner["metadata"].get("uid") != metadata["uid"]:
            # The Workflow was deleted while its executor ran: collect the pod, as the GC would.
            with contextlib.suppress(ApiError):
                self.store.delete(PODS, namespace, name)
            raise ApiError.not_found(WORKFLOWS, workflow_name)
        log = self.log_path(namespace, name)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b"")
        self.log_path(namespace, name, WAIT).write_bytes(b"")
        workdir = self.workdir(namespace, name)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        running = _Running(uid=uid)
        context = PodContext(
            namespace=namespace,
            name=name,
            workdir=workdir,
            tenant_dir=self.tenant_dir(namespace),
            log_path=log,
            cancel=running.cancel,
            started=lambda pid: self._started(namespace, name, running, pid),
        )
        running.thread = threading.Thread(
            target=self._run,
            args=(namespace, name, running, request.program, context),
            daemon=True,
            name=f"pod {namespace}/{name}",
        )
        with self._lock:
            self._running[(namespace, name)] = running
        running.thread.start()
        current = self.store.find(PODS, namespace, name)
        if current is None or current["metadata"].get("uid") != uid:  # deleted before it was tracked
            running.deleted = True
            running.cancel.set()
        return stored

    def kill(self, namespace: str, name: str) -> bool:
        """Stop a pod's program (the pod ends Failed); returns whether it was running."""
        with self._lock:
            running = self._running.get((namespace, name))
        if running is None:
            return False
        running.cancel.set()
        return True

    def recover(self) -> None:
        """After loading stored state: pods that were running when the emulator stopped have died."""
        pods, _ = self.store.list(PODS)
        for pod in pods:
            if (pod.get("status") or {}).get("phase") in ("Pending", "Running"):
                metadata = pod["metadata"]
                outcome = PodOutcome(exit_code=-9, message="the emulated node restarted while the pod ran")
                self._record_end(metadata["namespace"], metadata["name"], metadata["uid"], outcome)

    def close(self, timeout: float = 30.0) -> None:
        """Kill every running pod and wait for their programs to return."""
        self._closed = True
        self._unsubscribe()
        with self._lock:
            running = list(self._running.values())
        for pod in running:
            pod.cancel.set()
        for pod in running:
            if pod.thread is not None:
                pod.thread.join(timeout)

    # -- internals -------------------------------------------------------------
    def _started(self, namespace: str, name: str, running: _Running, pid: int | None) -> None:
        running.pid = pid
        now = now_rfc3339()

        def mutate(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            if status.get("phase") != "Pending":
                return
            status.update(phase="Running", startTime=now)
            status["conditions"] = [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ]
            image = pod["spec"]["containers"][1].get("image", "")
            status["containerStatuses"] = [
                _container_status(WAIT, WAIT_IMAGE, {"running": {"startedAt": now}}),
                _container_status(MAIN, image, {"running": {"startedAt": now}}),
            ]

        with contextlib.suppress(ApiError):  # deleted meanwhile
            self.store.modify(PODS, namespace, name, mutate, uid=running.uid)

    def _run(
        self, namespace: str, name: str, running: _Running, program: PodProgram, context: PodContext
    ) -> None:
        try:
            outcome = program(context)
        except Exception as exc:
            logger.exception("pod %s/%s: its program raised", namespace, name)
            outcome = PodOutcome(exit_code=None, message=f"the pod's program failed: {exc}")
        if running.deleted:
            self._remove_files(namespace, name)  # before the name is free for a new pod
        with self._lock:
            if self._running.get((namespace, name)) is running:
                del self._running[(namespace, name)]
        if not running.deleted:
            self._record_end(namespace, name, running.uid, outcome)

    def _record_end(self, namespace: str, name: str, uid: str, outcome: PodOutcome) -> None:
        now = now_rfc3339()
        code = _exit_status(outcome.exit_code)
        reason = "Completed" if code == 0 else "Error"
        if outcome.exit_code is None:
            reason = "StartError"

        def mutate(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            started = status.get("startTime") or now
            terminated: Obj = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now}
            if outcome.message and code != 0:
                terminated["message"] = outcome.message
            image = pod["spec"]["containers"][1].get("image", "")
            wait_state = {
                "terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now}
            }
            failed = code != 0 or bool(outcome.reason)
            status.update(phase="Failed" if failed else "Succeeded", startTime=started)
            if outcome.reason:
                status.update(reason=outcome.reason, message=outcome.message)
            status["conditions"] = [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False", "lastTransitionTime": now, "reason": "PodCompleted"},
            ]
            status["containerStatuses"] = [
                _container_status(WAIT, WAIT_IMAGE, wait_state),
                _container_status(MAIN, image, {"terminated": terminated}),
            ]
            if outcome.outputs is not None:
                annotations = pod["metadata"].setdefault("annotations", {})
                annotations[ANNOTATION_OUTPUTS] = json.dumps(dict(outcome.outputs), sort_keys=True)

        with contextlib.suppress(ApiError):  # deleted meanwhile
            self.store.modify(PODS, namespace, name, mutate, uid=uid)

    def _on_event(self, event: Event) -> None:
        if event.resource is not PODS or event.type != "DELETED":
            return
        metadata = event.object["metadata"]
        key = (metadata["namespace"], metadata["name"])
        with self._lock:
            running = self._running.get(key)
            if running is not None and running.uid == metadata.get("uid"):
                running.deleted = True
                running.cancel.set()
                return
        self._remove_files(*key)

    def _remove_files(self, namespace: str, name: str) -> None:
        shutil.rmtree(self.log_path(namespace, name).parent, ignore_errors=True)
        shutil.rmtree(self.workdir(namespace, name), ignore_errors=True)


class WorkflowPods:
    """The ``PodHost`` of one Workflow for one pass of the controller: its pods, found by
    owner and node id. The pods are read once per pass (as a controller reads its informer's
    cache) and read again after this pass creates or kills one."""

    def __init__(self, kubelet: Kubelet, workflow: Mapping[str, Any]) -> None:
        self.kubelet = kubelet
        self.workflow = workflow
        metadata = workflow.get("metadata") or {}
        self.namespace: str = metadata["namespace"]
        self.name: str = metadata["name"]
        self.uid: str = metadata["uid"]
        self._by_node: dict[str, Obj] | None = None

    def pods(self) -> list[Obj]:
        """The Workflow's pods as stored."""
        items, _ = self.kubelet.store.list(
            PODS,
            self.namespace,
            lambda pod: (pod["metadata"].get("labels") or {}).get(LABEL_WORKFLOW) == self.name,
        )
        return [
            pod
            for pod in items
            if any(ref.get("uid") == self.uid for ref in pod["metadata"].get("ownerReferences") or [])
        ]

    def _find(self, node_id: str) -> Obj | None:
        if self._by_node is None:
            self._by_node = {}
            for pod in self.pods():
                node = (pod["metadata"].get("annotations") or {}).get(ANNOTATION_NODE_ID)
                if node is not None:
                    self._by_node.setdefault(node, pod)  # the first, as the listing orders them
        return self._by_node.get(node_id)

    def get_pod(self, node_id: str) -> PodView | None:
        """The pod of ``node_id``, or None."""
        pod = self._find(node_id)
        return pod_view(pod) if pod is not None else None

    def create_pod(self, request: PodRequest) -> PodView:
        """Create and start the pod, or return the node's existing one."""
        existing = self._find(request.node_id)
        if existing is not None:
            return pod_view(existing)
        self._by_node = None
        return pod_view(self.kubelet.create_pod(self.workflow, request))

    def kill_pod(self, node_id: str) -> None:
        """Stop the node's pod, if it runs."""
        pod = self._find(node_id)
        if pod is not None:
            self._by_node = None
            self.kubelet.kill(self.namespace, pod["metadata"]["name"])
