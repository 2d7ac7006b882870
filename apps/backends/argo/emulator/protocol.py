"""The seam between the emulator's controller and whatever executes a Workflow.

The emulator plays three parts of a cluster: the API server, a kubelet that
runs pods, and Argo's workflow controller. The controller owns nothing but a
loop: for every unfinished Workflow it calls a ``WorkflowExecutor`` with the
Workflow and its last stored ``status`` and writes back the status it returns.
The executor keeps no state of its own between calls (a restarted controller
gets a fresh executor and the stored status), so it resumes wherever the last
stored status left off, as Argo's controller does after a restart.

An executor never runs processes itself. It asks the ``PodHost`` for a pod per
Pod node, handing it a ``PodProgram`` that the kubelet runs in its own thread:
pods outlive a controller restart, are killed when deleted or when the
Workflow is shut down, and their logs are served by ``pods/{name}/log``. The
executor learns how a pod is doing from ``PodHost.get_pod``.

Workflow deletion is handled by the API server and the kubelet (a Workflow's
pods go with it), ``spec.shutdown`` by the controller (its running pods are
killed and its unfinished nodes fail, with Argo's messages; ``Stop`` is
treated as ``Terminate``), for every executor alike: an executor is not
called for a Workflow that is shutting down or finished. An executor whose
``handles_shutdown`` attribute is true is called for a Workflow with
``spec.shutdown`` too, and stops it itself (Canal's interpreter runs exit
handlers on ``Stop``, as Argo does).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "ExecutorFactory",
    "PodContext",
    "PodHost",
    "PodOutcome",
    "PodProgram",
    "PodRequest",
    "PodView",
    "WorkflowExecutor",
]


@dataclass(frozen=True)
class PodContext:
    """What a running pod program gets from the kubelet.

    ``workdir`` is the pod's own empty directory (its working directory),
    inside ``tenant_dir``, the namespace's directory. Everything the program
    prints goes to ``log_path``, the main container's log, which is served
    while the pod runs. ``cancel`` is set when the pod must stop (deleted, or
    its Workflow shut down): return promptly. Call ``started`` once the
    process exists, with its pid; until then the pod is Pending.
    """

    namespace: str
    name: str
    workdir: Path
    tenant_dir: Path
    log_path: Path
    cancel: threading.Event
    started: Callable[[int | None], None]


@dataclass(frozen=True)
class PodOutcome:
    """How a pod program ended.

    ``exit_code`` is the main container's exit status (negative: killed by
    that signal, as in ``subprocess``); None when the process never started,
    with the reason in ``message``. ``outputs`` is what Argo's wait container
    would report for the node (Argo's ``outputs`` shape: ``parameters``,
    ``artifacts``, ``result``, ``exitCode``). ``reason`` is set when the pod as
    a whole was ended by Kubernetes rather than by its program: it becomes the
    pod's ``status.reason`` and ``message`` its ``status.message``, e.g.
    ``DeadlineExceeded`` for a pod past its ``activeDeadlineSeconds``.
    """

    exit_code: int | None
    message: str = ""
    outputs: Mapping[str, Any] | None = None
    reason: str = ""


PodProgram = Callable[[PodContext], PodOutcome]


@dataclass(frozen=True)
class PodRequest:
    """A pod an executor wants for one Pod node.

    The pod is named ``pod_name`` when given, else as Argo names it from the
    Workflow, ``node_name`` and ``template_name``. ``container`` is the main
    container as the pod spec shows it (``image``, ``command``, ``args``,
    ``env``); it is recorded, not interpreted: ``program`` is what runs.
    """

    node_id: str
    node_name: str
    template_name: str
    program: PodProgram
    container: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    pod_name: str = ""


@dataclass(frozen=True)
class PodView:
    """A pod as its Workflow's executor sees it: read from the stored Pod object.

    ``exit_code``, ``reason``, ``message`` and the times are the main
    container's (``reason``: ``Completed``, ``Error`` or ``StartError``);
    ``pod_reason`` and ``pod_message`` the pod's own (``DeadlineExceeded``).
    """

    name: str
    node_id: str
    phase: str  # Pending | Running | Succeeded | Failed
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    outputs: Mapping[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    pod_reason: str = ""
    pod_message: str = ""

    @property
    def finished(self) -> bool:
        """Whether the main container has ended (the pod Succeeded or Failed)."""
        return self.phase in ("Succeeded", "Failed")

    def failure_message(self) -> str:
        """Argo's node message for a failed main container, e.g. ``main: Error (exit code 1)``."""
        text = f"{self.reason or 'Error'} (exit code {self.exit_code})"
        if self.message:
            text = f"{text}: {self.message}"
        return f"main: {text}"


class PodHost(Protocol):
    """The pods of one Workflow, as its executor may use them (the emulator's kubelet)."""

    def get_pod(self, node_id: str) -> PodView | None:
        """The pod of node ``node_id``; None if it was never created or has been deleted."""
        ...

    def create_pod(self, request: PodRequest) -> PodView:
        """Create and start the pod of ``request.node_id``; idempotent: an existing pod is returned."""
        ...

    def kill_pod(self, node_id: str) -> None:
        """Stop the pod's program (it ends Failed); the pod object stays, as after a kill."""
        ...


class WorkflowExecutor(Protocol):
    """Advances Workflows: given a Workflow and its last stored status, return the next status.

    ``reconcile`` is called repeatedly (on every change of the Workflow or of
    one of its pods, and every fraction of a second) until the returned
    ``status.phase`` is Succeeded, Failed or Error. It must not block: work
    that takes time runs in pods. It must be able to continue from any status
    it or another instance returned before (the controller may have been
    restarted in between). It returns the whole Argo-shaped status: ``phase``,
    ``startedAt``, ``finishedAt``, ``message``, ``progress`` and ``nodes``
    keyed by node id. Raising marks the Workflow Error with the exception's
    text as its message.
    """

    def reconcile(
        self, workflow: Mapping[str, Any], status: Mapping[str, Any], pods: PodHost
    ) -> dict[str, Any]:
        """The Workflow's next status."""
        ...


ExecutorFactory = Callable[[], WorkflowExecutor]
