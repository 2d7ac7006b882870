"""An emulated Kubernetes cluster running Argo Workflows, on 127.0.0.1, for tests and demos.

``Emulator`` serves the API paths the ``kubernetes`` client uses for Argo
(discovery, ``workflows.argoproj.io``, pods and their logs), runs a kubelet
that executes pods as host processes, and an Argo controller loop that
advances each Workflow through a pluggable ``WorkflowExecutor``. The default
one, ``InterpreterExecutor``, is Canal's Argo interpreter
(``apps/backends/argo/interpreter``): steps, DAGs, parameters, artifacts,
loops, conditions, retries, exit handlers, timeouts, each Pod node a pod whose
containers run as sandboxed host processes (``LocalPodRunner``), its status
written as Argo writes it. Faults (deleted Workflows and pods, a controller
restart, 401 and 503 answers) are injected through its methods or its
``/_emulator/`` admin endpoints. Start one by hand with
``python -m apps.backends.argo.emulator``.
"""

from apps.backends.argo.emulator.emulator import CONTEXT, Emulator
from apps.backends.argo.emulator.errors import ApiError
from apps.backends.argo.emulator.interpreter_executor import InterpreterExecutor, InterpreterPod
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
    "InterpreterExecutor",
    "InterpreterPod",
    "PodContext",
    "PodHost",
    "PodOutcome",
    "PodProgram",
    "PodRequest",
    "PodView",
    "WorkflowExecutor",
]
