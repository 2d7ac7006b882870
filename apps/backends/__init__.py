"""Execution backends: pure Python (no Django). A backend runs one step (a
container command) and reports how it ended; ``local`` runs steps as host
processes, ``argo`` submits Argo Workflows to Kubernetes."""

# Importing a backend module registers it.
from apps.backends import local as _local  # noqa: F401
from apps.backends.base import (
    BackendError,
    ExecutionBackend,
    StepResult,
    StepSpec,
    StepStarted,
    get_backend,
    register_backend,
    registered_backends,
)

__all__ = [
    "BackendError",
    "ExecutionBackend",
    "StepResult",
    "StepSpec",
    "StepStarted",
    "get_backend",
    "register_backend",
    "registered_backends",
]
