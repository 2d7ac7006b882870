"""The ExecutionBackend interface, its registry, and the step spec/result types."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

__all__ = [
    "BackendError",
    "ExecutionBackend",
    "Heartbeat",
    "StartedCallback",
    "StepResult",
    "StepSpec",
    "StepStarted",
    "get_backend",
    "register_backend",
    "registered_backends",
]


class BackendError(Exception):
    """A backend could not be configured or used."""


@dataclass(frozen=True)
class StepSpec:
    """One step to run: the final argv (placeholders already substituted) and its context.

    ``env`` holds the KFP/pipeline env vars for the step and is kept out of
    ``repr`` so that logging a spec never logs a secret. ``timeout`` (seconds)
    covers the whole step, including building its task environment the first
    time. ``image`` is recorded and named in messages, never pulled.
    """

    step_id: str
    argv: Sequence[str]
    image: str = ""
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    workdir: Path | None = None
    log_path: Path | None = None
    timeout: float | None = None
    # Isolation. ``tenant`` (a namespace) never shares a sandbox, an environment or
    # an installer cache with another; ``tenant_dir`` holds all of its steps'
    # directories. A step may write only ``workdir`` and ``read_write``, and read
    # only ``read_only`` besides the host's programs and its environment.
    tenant: str = ""
    tenant_dir: Path | None = None
    read_only: tuple[Path, ...] = ()
    read_write: tuple[Path, ...] = ()
    scratch_dir: Path | None = None  # the backend's own per-step space (private /tmp, overlays)
    # Kubernetes quantities from the spec's resources ("650M", "500m"); empty: none.
    memory_limit: str = ""
    cpu_limit: str = ""
    # A container-like view of files (Argo pods; needs the step sandbox): ``root_dir``
    # becomes the step's ``/``, writable, with the host's programs and the task
    # environment mounted read-only over it and each ``mounts`` pair (host directory,
    # absolute path inside) bound in; nothing else of the host is reachable. The
    # step's working directory is ``workdir``, which must lie inside ``root_dir``.
    root_dir: Path | None = None
    mounts: tuple[tuple[Path, str], ...] = ()


@dataclass(frozen=True)
class StepStarted:
    """Reported once the step's process exists: its pid, which is also its process group."""

    step_id: str
    pid: int
    pgid: int
    mode: str


@dataclass(frozen=True)
class StepResult:
    """How a step ended.

    ``exit_code`` is the process's exit status, negative when a signal killed it
    (as in ``subprocess``), None when no process was started. ``error`` is a
    human-readable reason whenever the step did not succeed.
    """

    step_id: str
    exit_code: int | None
    error: str | None
    started_at: datetime
    finished_at: datetime
    timed_out: bool = False
    canceled: bool = False
    pid: int | None = None
    mode: str = ""
    task_env: str | None = None
    env_created: bool = False
    sandboxed: bool = False
    out_of_memory: bool = False

    @property
    def succeeded(self) -> bool:
        """Exit code 0 and neither canceled nor timed out."""
        return self.exit_code == 0 and not self.canceled and not self.timed_out

    @property
    def duration(self) -> float:
        """Wall-clock seconds from start to finish."""
        return (self.finished_at - self.started_at).total_seconds()


Heartbeat = Callable[[], Any]
StartedCallback = Callable[[StepStarted], Any]


class ExecutionBackend(ABC):
    """Runs one step at a time per call; many calls may run at once from different threads."""

    name: ClassVar[str] = ""

    @abstractmethod
    def run(
        self,
        spec: StepSpec,
        *,
        cancel: threading.Event | None = None,
        heartbeat: Heartbeat | None = None,
        heartbeat_interval: float | None = None,
        on_started: StartedCallback | None = None,
    ) -> StepResult:
        """Run the step to completion in the calling thread and report how it ended.

        Setting ``cancel`` (or calling ``terminate(step_id)`` from another
        thread) stops it. ``heartbeat`` is called about every
        ``heartbeat_interval`` seconds while it runs, in this thread
        (including while its task environment is being built): returning
        ``False`` cancels the step (how another process asks for a stop);
        raising terminates it and reports it canceled with "heartbeat failed"
        (its lease is lost). ``on_started`` is called once with the step's
        pid/pgid.
        """

    @abstractmethod
    def terminate(self, step_id: str) -> bool:
        """Ask a running step to stop; returns whether it was running here."""

    def close(self) -> None:  # noqa: B027  (optional hook, most backends hold nothing)
        """Release long-lived resources (helper processes, clients)."""


_BackendT = TypeVar("_BackendT", bound=type[ExecutionBackend])
_REGISTRY: dict[str, type[ExecutionBackend]] = {}


def register_backend(name: str) -> Callable[[_BackendT], _BackendT]:
    """Class decorator: make an ExecutionBackend available under ``name``."""

    def decorate(cls: _BackendT) -> _BackendT:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"backend {name!r} is already registered by {existing.__name__}")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return decorate


def registered_backends() -> list[str]:
    """Names of the registered backends."""
    return sorted(_REGISTRY)


def get_backend(name: str, **options: Any) -> ExecutionBackend:
    """A new backend instance of the registered class ``name``."""
    cls = _REGISTRY.get(name)
    if cls is None:
        raise BackendError(f"unknown execution backend {name!r} (known: {registered_backends()})")
    return cls(**options)
