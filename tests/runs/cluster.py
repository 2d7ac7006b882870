"""The emulated Kubernetes cluster the argo executor's tests submit to (no cluster runs here).

Its kubelet runs each pod as a sandboxed host process (the local backend) that sees the
steps' shared directory; the settings point Canal's kubernetes client at it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from apps.backends.argo.emulator import Emulator
from apps.backends.local import LocalBackend, TaskEnvManager
from apps.backends.local.sandbox import SandboxConfig


def pod_backend(envs_dir: Path) -> LocalBackend:
    """Sandboxed pods, with their task environments under ``envs_dir``."""
    shared = tuple(os.environ["CANAL_STEP_SHARED_PATHS"].split(","))
    return LocalBackend(
        envs=TaskEnvManager(envs_dir), terminate_grace=1.0, sandbox=SandboxConfig(shared=shared)
    )


@contextlib.contextmanager
def emulated_cluster(
    backend: LocalBackend, tmp_path: Path, settings: Any, namespace: str, *, resync: float
) -> Iterator[Emulator]:
    """A started emulator that Canal's settings point at, Workflows going to ``namespace``."""
    emulator = Emulator(backend=backend, work_dir=tmp_path / "cluster", resync=resync).start()
    settings.CANAL_KUBECONFIG = str(emulator.write_kubeconfig(tmp_path / "kubeconfig", "default"))
    settings.CANAL_ARGO_NAMESPACE = namespace
    try:
        yield emulator
    finally:
        emulator.stop()
