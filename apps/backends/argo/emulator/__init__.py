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

Output artifacts go to Argo's default artifact repository: files under
``Emulator.artifacts_dir`` (``LocalArtifactRepository``), or an S3 bucket with
``Emulator(artifacts=S3ArtifactRepository(bucket, endpoint_url=...))``
(``apps.backends.argo.s3_artifacts``; ``python -m apps.backends.argo.emulator
--s3-endpoint URL --s3-bucket B``, credentials from the ``AWS_*`` variables),
stored as Argo stores an ``archive: none`` artifact (a directory is one object
per file under ``key/``), so a compiled run's artifacts are objects where
``compiler_outputs.executor_outputs`` says they are.
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
