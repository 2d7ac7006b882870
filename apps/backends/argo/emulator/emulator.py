"""The emulated cluster as one object: start it, point a kubeconfig at it, inject faults, stop it."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from apps.backends.argo.emulator.controller import Controller
from apps.backends.argo.emulator.faults import Faults
from apps.backends.argo.emulator.interpreter_executor import InterpreterExecutor
from apps.backends.argo.emulator.kubelet import Kubelet
from apps.backends.argo.emulator.protocol import ExecutorFactory, WorkflowExecutor
from apps.backends.argo.emulator.server import ApiServer
from apps.backends.argo.emulator.store import PODS, WORKFLOWS, Event, Obj, Store
from apps.backends.argo.local_runner import ArtifactRepository, LocalArtifactRepository
from apps.backends.local import LocalBackend

__all__ = ["CONTEXT", "Emulator"]

logger = logging.getLogger(__name__)

CONTEXT = "canal-emulator"
_STATE_FILE = "objects.json"


class Emulator:
    """An emulated Kubernetes cluster with Argo on ``host:port``: API server, kubelet, controller.

    ``executor_factory`` makes the controller's executor (a fresh one at every
    controller start); by default it is an ``InterpreterExecutor``, Canal's
    Argo interpreter, running pods with ``backend`` (by default a
    ``LocalBackend`` of the emulator's own, closed at ``stop``) and keeping
    output artifacts in ``artifacts`` (Argo's default artifact repository: an
    ``ArtifactRepository`` such as ``S3ArtifactRepository``; by default a
    ``LocalArtifactRepository`` in ``artifacts_dir``). ``port=0`` picks a free
    port. Pods' working directories, logs and local artifacts live under
    ``state_dir`` when given
    (which also keeps every object in ``objects.json`` across emulator
    restarts), else ``work_dir``, else a temporary directory removed at
    ``stop``. ``status_subresource`` serves ``workflows/status`` (stock Argo's
    CRD does not declare it).
    """

    def __init__(
        self,
        *,
        executor_factory: ExecutorFactory | None = None,
        backend: LocalBackend | None = None,
        artifacts: ArtifactRepository | None = None,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        work_dir: Path | None = None,
        state_dir: Path | None = None,
        status_subresource: bool = False,
        resync: float = 0.25,
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.host = host
        self.requested_port = port
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._temporary = state_dir is None and work_dir is None
        self.root = self.state_dir or (Path(work_dir) if work_dir is not None else None)
        self.store = Store(status_subresource=("workflows",) if status_subresource else ())
        self.faults = Faults()
        self.executor_factory: ExecutorFactory = executor_factory or self._interpreter_executor
        self.backend = backend
        self.artifacts = artifacts
        self._own_backend: LocalBackend | None = None
        self.resync = resync
        self.kubelet: Kubelet | None = None
        self.controller: Controller | None = None
        self.server: ApiServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._saver: threading.Thread | None = None
        self._dirty = threading.Event()
        self._stopping = threading.Event()

    # -- life cycle ----------------------------------------------------------
    def start(self) -> Emulator:
        """Start the API server, the kubelet and the controller; returns self."""
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="canal-k8s-emulator-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.kubelet = Kubelet(self.store, self.root)
        if self.state_dir is not None:
            state = self.state_dir / _STATE_FILE
            if state.is_file():
                self.store.restore(json.loads(state.read_text()))
                self.kubelet.recover()
            self.store.subscribe(self._mark_dirty)
            self._saver = threading.Thread(target=self._save_loop, name="emulator state saver", daemon=True)
            self._saver.start()
        self.controller = Controller(self.store, self.kubelet, self.executor_factory, resync=self.resync)
        self.server = ApiServer(
            (self.host, self.requested_port),
            store=self.store,
            kubelet=self.kubelet,
            token=self.token,
            faults=self.faults,
            admin={
                "controller/restart": self.restart_controller,
                "controller/stop": self.stop_controller,
                "controller/start": self.start_controller,
                "controller/running": lambda: self.controller is not None and self.controller.running,
            },
        )
        self._serve_thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="emulated apiserver",
            daemon=True,
        )
        self._serve_thread.start()
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop everything: the controller, the server (open watches end), the pods (killed)."""
        self._stopping.set()
        if self.controller is not None:
            self.controller.stop()
        if self.server is not None:
            self.server.stopping.set()
            self.store.wake_watchers()
            self.server.shutdown()
            self.server.close_connections()
            self.server.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(30)
        if self.kubelet is not None:
            self.kubelet.close()
        if self._own_backend is not None:
            self._own_backend.close()
            self._own_backend = None
        if self._saver is not None:
            self._dirty.set()
            self._saver.join(30)
            self._save()
        if self._temporary and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the API server listens on."""
        if self.server is None:
            raise RuntimeError("the emulator is not started")
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """The API server's base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def artifacts_dir(self) -> Path:
        """Where the default executor keeps output artifacts when no ``artifacts`` repository is given."""
        if self.root is None:
            raise RuntimeError("the emulator is not started")
        return self.root / "artifacts"

    def _interpreter_executor(self) -> WorkflowExecutor:
        """The default executor: Canal's Argo interpreter, pods run by ``backend``."""
        backend = self.backend
        if backend is None:
            if self._own_backend is None:
                self._own_backend = LocalBackend()
            backend = self._own_backend
        artifacts = self.artifacts
        if artifacts is None:
            artifacts = LocalArtifactRepository(self.artifacts_dir)
        return InterpreterExecutor(backend, artifacts=artifacts)

    # -- clients -------------------------------------------------------------
    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig for this cluster: the server, the bearer token, ``namespace`` as the default."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": CONTEXT, "cluster": {"server": self.url}}],
            "users": [{"name": CONTEXT, "user": {"token": self.token}}],
            "contexts": [
                {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}
            ],
            "current-context": CONTEXT,
        }

    def write_kubeconfig(self, path: Path | str, namespace: str = "default") -> Path:
        """Write ``kubeconfig()`` to ``path`` (mode 0600: it holds the token)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(self.kubeconfig(namespace), handle, sort_keys=False)
        return target

    # -- faults ----------------------------------------------------------------
    def delete_workflow(self, namespace: str, name: str) -> None:
        """Delete a Workflow as ``kubectl delete`` would: its pods (and their logs) go with it."""
        self.store.delete(WORKFLOWS, namespace, name)

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod: its process is killed, its log is gone."""
        self.store.delete(PODS, namespace, name)

    def stop_controller(self) -> None:
        """Stop the controller loop (pods keep running, objects stay)."""
        if self.controller is not None:
            self.controller.stop()

    def start_controller(self) -> None:
        """Start the controller loop with a fresh executor."""
        if self.controller is not None:
            self.controller.start()

    def restart_controller(self) -> None:
        """Stop and start the controller: its new executor resumes from the stored statuses."""
        if self.controller is not None:
            self.controller.restart()

    def fail_requests(self, code: int, count: int | None = 1) -> None:
        """Answer the next ``count`` API requests with ``code`` (all, when None, until ``clear_faults``)."""
        self.faults.inject(code, count)

    def clear_faults(self) -> None:
        """Answer API requests normally again."""
        self.faults.clear()

    # -- inspection ----------------------------------------------------------------
    def workflow(self, namespace: str, name: str) -> Obj:
        """The stored Workflow."""
        return self.store.get(WORKFLOWS, namespace, name)

    def pods(self, namespace: str) -> list[Obj]:
        """The stored pods of a namespace."""
        items, _ = self.store.list(PODS, namespace)
        return items

    def pod_pid(self, namespace: str, name: str) -> int | None:
        """The host pid of a running pod's process."""
        return self.kubelet.pid(namespace, name) if self.kubelet is not None else None

    def pod_workdir(self, namespace: str, name: str) -> Path:
        """A pod's working directory on the host."""
        if self.kubelet is None:
            raise RuntimeError("the emulator is not started")
        return self.kubelet.workdir(namespace, name)

    # -- persistence -------------------------------------------------------------------
    def _mark_dirty(self, event: Event) -> None:
        self._dirty.set()

    def _save_loop(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait()
            self._dirty.clear()
            self._save()
            self._stopping.wait(0.5)  # at most two writes a second

    def _save(self) -> None:
        if self.state_dir is None:
            return
        target = self.state_dir / _STATE_FILE
        temporary = target.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(self.store.snapshot()))
            os.replace(temporary, target)
        except OSError:
            logger.exception("could not save the emulator's state to %s", target)
