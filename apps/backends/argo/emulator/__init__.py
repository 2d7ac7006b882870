"""An emulated Kubernetes cluster running Argo Workflows, on 127.0.0.1, for tests and demos.

``Emulator`` serves the API paths the ``kubernetes`` client uses for Argo
(discovery, ``workflows.argoproj.io``, pods and their logs), runs a kubelet
that executes pods as host processes, and an Argo controller loop that
advances each Workflow through a pluggable ``WorkflowExecutor``. Faults
(deleted objects, a controller restart, 401 and 503 answers) are injected
through its methods or its ``/_emulator/`` admin endpoints. Start one by
hand with ``python -m apps.backends.argo.emulator``.
"""

from apps.backends.argo.emulator.emulator import CONTEXT, Emulator
from apps.backends.argo.emulator.errors import ApiError
from apps.backends.argo.emulator.host_executor import HostExecutor, HostPod, Unsupported
from apps.backends.argo.emulator.protocol import (
    ExecutorFactory,
    PodContext,
    PodHost,
    PodOutcome,
    PodProgram,
    PodRequest,
    PodView,
    WorkflowExecutor,
)

__all__ = [
    "CONTEXT",
    "ApiError",
    "Emulator",
    "ExecutorFactory",
    "HostExecutor",
    "HostPod",
    "PodContext",
    "PodHost",
    "PodOutcome",
    "PodProgram",
    "PodRequest",
    "PodView",
    "Unsupported",
    "WorkflowExecutor",
]
