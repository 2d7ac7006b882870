"""Execution backends: pure Python (no Django). A step backend runs one step (a
container command) and reports how it ended: ``local`` runs steps as sandboxed
host processes. ``argo/`` holds what runs on Argo Workflows (the IR compiler, the
cluster client, Canal's Argo interpreter and the emulated cluster); which of them
runs a run is decided by the run executors in ``apps.runs.services.executors``."""

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
