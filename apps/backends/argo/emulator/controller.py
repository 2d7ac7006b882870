"""Argo's workflow controller, emulated: one loop that advances every unfinished Workflow.

The loop wakes on every change in the store (a Workflow submitted or patched,
a pod started or ended) and every ``resync`` seconds. For each Workflow that
is not finished it either shuts it down (``spec.shutdown``, unless the
executor ``handles_shutdown`` itself) or asks the executor for the next
status, and writes that status back conditionally on the
``resourceVersion`` it read: a client's concurrent write wins and the
Workflow is simply looked at again, as Argo requeues on a conflict.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

from apps.backends.argo.emulator.errors import ApiError
from apps.backends.argo.emulator.kubelet import Kubelet, WorkflowPods
from apps.backends.argo.emulator.naming import (
    LABEL_COMPLETED,
    LABEL_PHASE,
    NODE_FULFILLED,
    WORKFLOW_FINISHED,
    now_rfc3339,
    progress,
)
from apps.backends.argo.emulator.protocol import ExecutorFactory, WorkflowExecutor
from apps.backends.argo.emulator.store import WORKFLOWS, Event, Obj, Store

__all__ = ["Controller", "shut_down_status"]

logger = logging.getLogger(__name__)


def shut_down_status(status: dict[str, Any], strategy: str, *, killed: set[str]) -> dict[str, Any]:
    """The status Argo writes when ``spec.shutdown`` stops a Workflow.

    Unfinished nodes end Failed: a Pod node whose pod was running (``killed``
    node ids) with "workflow shutdown with strategy:  X" (two spaces, as
    Argo's ``exec_control.go`` spells it), one without a running pod with
    "workflow shutdown with strategy: X", the others with "Stopped with
    strategy 'X'", which is also the Workflow's message; its phase is Failed.
    ``Stop`` is treated as ``Terminate``: the emulator runs no exit handlers
    on its own.
    """
    now = now_rfc3339()
    result = copy.deepcopy(status)
    result.setdefault("startedAt", now)
    nodes: dict[str, dict[str, Any]] = result.get("nodes") or {}
    for node_id, node in nodes.items():
        if node.get("phase") in NODE_FULFILLED:
            continue
        if node.get("type") == "Pod":
            spaces = "  " if node_id in killed else " "
            message = f"workflow shutdown with strategy:{spaces}{strategy}"
        else:
            message = f"Stopped with strategy '{strategy}'"
        node.update(phase="Failed", message=message, finishedAt=now)
    if nodes:
        result["progress"] = progress(nodes)
    result.update(phase="Failed", message=f"Stopped with strategy '{strategy}'", finishedAt=now)
    return result


class Controller:
    """Runs ``reconcile`` of a fresh executor from ``executor_factory`` over every unfinished Workflow."""

    def __init__(
        self, store: Store, kubelet: Kubelet, executor_factory: ExecutorFactory, *, resync: float = 0.25
    ) -> None:
        self.store = store
        self.kubelet = kubelet
        self.executor_factory = executor_factory
        self.resync = resync
        self._executor: WorkflowExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._unsubscribe: Any = None

    @property
    def running(self) -> bool:
        """Whether the loop runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the loop with a new executor (it knows only what the store holds)."""
        if self.running:
            return
        self._executor = self.executor_factory()
        self._stop.clear()
        self._wake.set()
        self._unsubscribe = self.store.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._loop, name="emulated argo controller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop after its current pass; pods and stored objects are left as they are."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("the emulated controller did not stop within %ss", timeout)
        self._thread = None
        self._executor = None

    def restart(self) -> None:
        """Stop and start again: the new executor resumes from the stored statuses."""
        self.stop()
        self.start()

    def _on_event(self, event: Event) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.resync)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.sync_all()

    def sync_all(self) -> None:
        """One pass over every Workflow (the loop calls this; tests may too, with the loop stopped)."""
        # Finished Workflows are left out before they are copied: the loop runs several times a second.
        workflows, _ = self.store.list(
            WORKFLOWS, selector=lambda wf: (wf.get("status") or {}).get("phase") not in WORKFLOW_FINISHED
        )
        for workflow in workflows:
            if self._stop.is_set():
                return
            try:
                self._sync(workflow)
            except Exception:
                logger.exception("emulated controller: syncing %s failed", workflow["metadata"].get("name"))

    def _sync(self, workflow: Obj) -> None:
        status: dict[str, Any] = workflow.get("status") or {}
        if status.get("phase") in WORKFLOW_FINISHED:
            return
        pods = WorkflowPods(self.kubelet, workflow)
        strategy = (workflow.get("spec") or {}).get("shutdown")
        executor = self._executor
        if strategy and not getattr(executor, "handles_shutdown", False):
            killed: set[str] = set()
            for pod in pods.pods():
                if (pod.get("status") or {}).get("phase") in ("Pending", "Running"):
                    self.kubelet.kill(pod["metadata"]["namespace"], pod["metadata"]["name"])
                    killed.add(pod["metadata"]["annotations"].get("workflows.argoproj.io/node-id", ""))
            new_status = shut_down_status(status, str(strategy), killed=killed)
        else:
            if executor is None:
                return
            try:
                new_status = executor.reconcile(copy.deepcopy(workflow), copy.deepcopy(status), pods)
            except ApiError as exc:
                if exc.code == 503:
                    return  # the node is shutting down
                new_status = self._errored(status, exc.message)
            except Exception as exc:
                logger.exception(
                    "emulated controller: the executor failed on %s", workflow["metadata"]["name"]
                )
                new_status = self._errored(status, f"{type(exc).__name__}: {exc}")
        if new_status == status:
            return
        self._write(workflow, new_status)

    @staticmethod
    def _errored(status: dict[str, Any], message: str) -> dict[str, Any]:
        now = now_rfc3339()
        result = copy.deepcopy(status)
        result.setdefault("startedAt", now)
        result.update(phase="Error", message=message, finishedAt=now)
        return result

    def _write(self, workflow: Obj, status: dict[str, Any]) -> None:
        metadata = workflow["metadata"]

        def mutate(obj: Obj) -> None:
            obj["status"] = status
            labels = obj["metadata"].setdefault("labels", {})
            if status.get("phase"):
                labels[LABEL_PHASE] = status["phase"]
            labels[LABEL_COMPLETED] = "true" if status.get("phase") in WORKFLOW_FINISHED else "false"

        try:
            self.store.modify(
                WORKFLOWS,
                metadata["namespace"],
                metadata["name"],
                mutate,
                uid=metadata["uid"],
                resource_version=metadata["resourceVersion"],
            )
        except ApiError as exc:
            # 409: a client wrote in between (a shutdown, a retry); 404: deleted. Look again.
            logger.debug("emulated controller: status of %s not written: %s", metadata["name"], exc.message)
            self._wake.set()
