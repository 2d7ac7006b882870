"""The local execution backend: every step is a host process in its own process group."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apps.backends.base import (
    BackendError,
    ExecutionBackend,
    Heartbeat,
    StartedCallback,
    StepResult,
    StepSpec,
    StepStarted,
    register_backend,
)
from apps.backends.local.environment import resolve_executable, step_environment
from apps.backends.local.prelude import (
    EXECUTOR_MODULE,
    SOURCE_FILE_NAME,
    LightweightCommand,
    PipInstall,
    parse_lightweight_command,
)
from apps.backends.local.process import (
    RunningProcess,
    SubprocessProcess,
    Watch,
    describe_exit,
    supervise,
    wait_group_gone,
)
from apps.backends.local.taskenv import EnvBuildError, EnvInterrupted, EnvSpec, TaskEnv, TaskEnvManager
from apps.backends.local.zygote import Zygote, ZygoteError, ZygoteLost, zygote_supported

__all__ = ["DEFAULT_KFP_VERSION", "LocalBackend"]

logger = logging.getLogger(__name__)

# kfp version for lightweight commands that install nothing themselves
# (install_kfp_package=False: the image is expected to provide kfp).
DEFAULT_KFP_VERSION = "2.14.6"
_ZYGOTE_RETRY_SECONDS = 60.0
_STOP_MESSAGES = {
    "canceled": "canceled; the step's process group was terminated",
    "timed_out": "timed out after {timeout}s; the step's process group was terminated",
    "lost": "{detail}; the step's process group was terminated",
}


_Finish = Callable[..., StepResult]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Plan:
    """What will actually be run for a step."""

    env_spec: EnvSpec
    lightweight: LightweightCommand | None
    preload: tuple[str, ...]


_PoolKey = tuple[str, tuple[str, ...]]


class _ZygotePool:
    """One zygote per (task environment, preload), started on first use, LRU-bounded."""

    def __init__(self, max_zygotes: int) -> None:
        self.max_zygotes = max(1, max_zygotes)
        self._zygotes: OrderedDict[_PoolKey, Zygote] = OrderedDict()
        self._in_use: dict[Zygote, int] = {}  # steps running in each zygote
        self._failed_at: dict[_PoolKey, float] = {}
        self._start_locks: dict[_PoolKey, threading.Lock] = {}
        self._lock = threading.Lock()

    def acquire(
        self, env: TaskEnv, preload: tuple[str, ...], make_env: Callable[[TaskEnv], dict[str, str]]
    ) -> Zygote | None:
        """A running zygote for ``env``, counted as in use until ``release``; None if it cannot start."""
        key = (str(env.path), preload)
        with self._lock:
            failed = self._failed_at.get(key)
            if failed is not None and time.monotonic() - failed < _ZYGOTE_RETRY_SECONDS:
                return None
            start_lock = self._start_locks.setdefault(key, threading.Lock())
        with start_lock:  # one start per environment even when many steps arrive at once
            with self._lock:
                zygote = self._zygotes.get(key)
                if zygote is not None and zygote.alive():
                    self._zygotes.move_to_end(key)
                    self._in_use[zygote] = self._in_use.get(zygote, 0) + 1
                    return zygote
            if zygote is not None:
                self.discard(zygote)
            zygote = Zygote(
                env.python,
                preload=preload,
                env=make_env(env),
                cwd=env.path,
                log_path=env.path / "canal-zygote.log",
            )
            try:
                zygote.start()
            except (ZygoteError, OSError) as exc:
                logger.warning("zygote for %s unavailable, using plain processes: %s", env.path.name, exc)
                with self._lock:
                    self._failed_at[key] = time.monotonic()
                return None
            if zygote.preload_errors:
                logger.warning(
                    "zygote for %s could not preload %s", env.path.name, sorted(zygote.preload_errors)
                )
            with self._lock:
                self._zygotes[key] = zygote
                self._in_use[zygote] = 1
                idle = [z for z in self._zygotes.values() if not self._in_use.get(z)]
                evict = idle[: max(0, len(self._zygotes) - self.max_zygotes)]
                for old in evict:
                    self._forget(old)
        for old in evict:
            old.close()
        return zygote

    def _forget(self, zygote: Zygote) -> None:
        for key, value in list(self._zygotes.items()):
            if value is zygote:
                del self._zygotes[key]
        self._in_use.pop(zygote, None)

    def release(self, zygote: Zygote) -> None:
        """The step that acquired ``zygote`` is done with it."""
        with self._lock:
            if zygote in self._in_use:
                self._in_use[zygote] = max(0, self._in_use[zygote] - 1)

    def discard(self, zygote: Zygote) -> None:
        """Forget a zygote that failed (the next step starts a new one)."""
        with self._lock:
            self._forget(zygote)
        zygote.close()

    def pids(self) -> list[int]:
        """Pids of the running zygotes."""
        with self._lock:
            return [z.pid for z in self._zygotes.values() if z.pid is not None and z.alive()]

    def close(self) -> None:
        """Stop every zygote (their running steps are killed)."""
        with self._lock:
            zygotes = list(self._zygotes.values())
            self._zygotes.clear()
            self._in_use.clear()
        for zygote in zygotes:
            zygote.close()


@register_backend("local")
class LocalBackend(ExecutionBackend):
    """Runs steps as host processes; images are recorded, never pulled.

    Lightweight Python components (the kfp-generated command) run in a
    cached task environment that already holds what their prelude would
    pip-install, forked from a warm interpreter (the zygote) of that
    environment. Every other command runs as written, argv as a list, with
    a base task environment first on PATH. Each step gets a sanitised
    environment and its own process group, and writes stdout and stderr
    straight into its log file.
    """

    def __init__(
        self,
        *,
        env_cache_dir: str | os.PathLike[str] | None = None,
        base_python: str | None = None,
        installer: str = "auto",
        use_zygote: bool = True,
        max_zygotes: int = 8,
        terminate_grace: float = 5.0,
        heartbeat_interval: float = 2.0,
        env_passthrough: Iterable[str] = (),
        default_kfp_version: str = DEFAULT_KFP_VERSION,
        envs: TaskEnvManager | None = None,
    ) -> None:
        self.envs = envs or TaskEnvManager(env_cache_dir, base_python=base_python, installer=installer)
        self.use_zygote = use_zygote and zygote_supported()
        self.terminate_grace = terminate_grace
        self.heartbeat_interval = heartbeat_interval
        self.env_passthrough = tuple(env_passthrough)
        self.default_kfp_version = default_kfp_version
        self._max_zygotes = max_zygotes
        self._zygotes = _ZygotePool(max_zygotes)
        self._active: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()

    # -- public API ------------------------------------------------------
    def run(
        self,
        spec: StepSpec,
        *,
        cancel: threading.Event | None = None,
        heartbeat: Heartbeat | None = None,
        heartbeat_interval: float | None = None,
        on_started: StartedCallback | None = None,
    ) -> StepResult:
        """Run ``spec`` in this thread until it ends; see ExecutionBackend.run."""
        self._check_fork()
        if not spec.argv:
            raise BackendError("a step needs a command")
        started_at = _now()
        event = cancel if cancel is not None else threading.Event()
        with self._lock:
            if spec.step_id in self._active:
                raise BackendError(f"step {spec.step_id!r} is already running on this backend")
            self._active[spec.step_id] = event
        watch = Watch(
            event,
            timeout=spec.timeout,
            heartbeat=heartbeat,
            heartbeat_interval=heartbeat_interval or self.heartbeat_interval,
        )
        log_fd = self._open_log(spec.log_path)
        try:
            return self._run(spec, watch, log_fd, started_at, on_started)
        finally:
            os.close(log_fd)
            with self._lock:
                self._active.pop(spec.step_id, None)

    def terminate(self, step_id: str) -> bool:
        """Stop a running step (SIGTERM to its group, SIGKILL after the grace period)."""
        with self._lock:
            event = self._active.get(step_id)
        if event is None:
            return False
        event.set()
        return True

    def prepare(self, argv: Iterable[str]) -> TaskEnv:
        """Build the task environment for a command and start its zygote, ahead of the step.

        Optional: ``run`` does the same on first use. Calling it for every
        executor when a run starts builds environments before the first step
        needs them, and keeps the zygote start (≈0.1 s) off the critical path.
        """
        self._check_fork()
        plan = self.plan(argv)
        env, _ = self.envs.ensure(plan.env_spec)
        if self.use_zygote:
            zygote = self._zygotes.acquire(env, plan.preload, self._zygote_env)
            if zygote is not None:
                self._zygotes.release(zygote)
        return env

    def running_steps(self) -> list[str]:
        """Ids of the steps running on this backend now."""
        with self._lock:
            return sorted(self._active)

    def zygote_pids(self) -> list[int]:
        """Pids of this backend's live zygotes."""
        return self._zygotes.pids()

    def close(self) -> None:
        """Stop the zygotes; steps still running in them are killed."""
        self._zygotes.close()

    # -- internals -------------------------------------------------------
    def _check_fork(self) -> None:
        # A worker pool that forks after the backend was made (Celery prefork)
        # must not share the parent's zygote sockets: start afresh.
        if os.getpid() != self._owner_pid:
            self._zygotes.close()
            self._zygotes = _ZygotePool(self._max_zygotes)
            self._active = {}
            self._lock = threading.Lock()
            self._owner_pid = os.getpid()

    @staticmethod
    def _open_log(path: Path | None) -> int:
        if path is None:
            return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def plan(self, argv: Iterable[str]) -> _Plan:
        """Decide how an argv runs: its task environment and whether it is a lightweight component."""
        lightweight = parse_lightweight_command(list(argv))
        if lightweight is None:
            return _Plan(env_spec=EnvSpec(), lightweight=None, preload=())
        installs = lightweight.installs or (
            PipInstall(requirements=(f"kfp=={self.default_kfp_version}",), no_deps=True),
        )
        return _Plan(env_spec=EnvSpec(installs), lightweight=lightweight, preload=(EXECUTOR_MODULE,))

    def _run(
        self,
        spec: StepSpec,
        watch: Watch,
        log_fd: int,
        started_at: datetime,
        on_started: StartedCallback | None,
    ) -> StepResult:
        def finish(exit_code: int | None, error: str | None, **extra: Any) -> StepResult:
            return StepResult(
                step_id=spec.step_id,
                exit_code=exit_code,
                error=error,
                started_at=started_at,
                finished_at=_now(),
                **extra,
            )

        early = watch.poll()
        if early is not None:
            return self._stopped(finish, early, spec, None)

        plan = self.plan(spec.argv)
        try:
            env, created = self.envs.ensure(plan.env_spec, watch=watch, log_fd=log_fd)
        except EnvInterrupted as exc:
            return self._stopped(finish, exc.reason, spec, None, detail=watch.lost_reason)
        except EnvBuildError as exc:
            return finish(None, str(exc))

        workdir = str(spec.workdir) if spec.workdir is not None else tempfile.mkdtemp(prefix="canal-step-")
        try:
            if spec.workdir is not None:
                Path(workdir).mkdir(parents=True, exist_ok=True)
            step_env = step_environment(spec.env, task_env=env.path, passthrough=self.env_passthrough)
            common: dict[str, Any] = {"task_env": str(env.path), "env_created": created}
            if plan.lightweight is not None:
                step_env["_KFP_RUNTIME"] = "true"
                request: dict[str, Any] = {
                    "mode": "python",
                    "module": EXECUTOR_MODULE,
                    "source": plan.lightweight.source,
                    "source_name": SOURCE_FILE_NAME,
                    "args": list(plan.lightweight.args),
                    "env": step_env,
                    "cwd": workdir,
                }
            else:
                program = str(spec.argv[0])
                executable = resolve_executable(program, step_env, workdir)
                if executable is None:
                    message = (
                        f"executable {program!r} was not found on this host. The local backend runs "
                        f"commands on the host, not inside the image {spec.image or '(none given)'!r}: "
                        f"install {program!r} on the host, or run this pipeline on a container backend."
                    )
                    os.write(log_fd, f"[canal] {message}\n".encode())
                    return finish(None, message, mode="none", **common)
                request = {
                    "mode": "exec",
                    "argv": [str(a) for a in spec.argv],
                    "executable": executable,
                    "env": step_env,
                    "cwd": workdir,
                }
            return self._launch_and_supervise(
                spec, plan, env, request, log_fd, watch, finish, on_started, common
            )
        finally:
            if spec.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)

    def _launch_and_supervise(
        self,
        spec: StepSpec,
        plan: _Plan,
        env: TaskEnv,
        request: dict[str, Any],
        log_fd: int,
        watch: Watch,
        finish: _Finish,
        on_started: StartedCallback | None,
        common: dict[str, Any],
    ) -> StepResult:
        proc: RunningProcess | None = None
        zygote: Zygote | None = None
        mode = "subprocess"
        scratch: str | None = None
        if self.use_zygote:
            for attempt in range(2):
                zygote = self._zygotes.acquire(env, plan.preload, self._zygote_env)
                if zygote is None:
                    break
                try:
                    proc = zygote.launch(request, log_fd)
                    mode = "zygote"
                    break
                except ZygoteError as exc:
                    logger.warning("zygote launch failed (attempt %d): %s", attempt + 1, exc)
                    self._zygotes.discard(zygote)
                    zygote = None
        try:
            if proc is None:
                proc, scratch = self._start_subprocess(env, request, log_fd)
            if on_started is not None:
                try:
                    on_started(StepStarted(step_id=spec.step_id, pid=proc.pid, pgid=proc.pid, mode=mode))
                except Exception:
                    logger.exception("on_started callback failed for step %s", spec.step_id)
            try:
                outcome = supervise(proc, watch, self.terminate_grace)
                # Whatever the step left in its group was sent SIGKILL when its
                # main process ended; report the end only once it is really gone.
                if not wait_group_gone(proc.pid):
                    logger.warning("step %s: processes of group %d outlived it", spec.step_id, proc.pid)
            except ZygoteLost as exc:
                if zygote is not None:
                    self._zygotes.discard(zygote)
                return finish(
                    None,
                    f"the step's zygote process died while it ran ({exc})",
                    pid=proc.pid,
                    mode=mode,
                    **common,
                )
            if outcome.stopped_because is not None:
                return self._stopped(
                    finish,
                    outcome.stopped_because,
                    spec,
                    outcome.returncode,
                    detail=watch.lost_reason,
                    pid=proc.pid,
                    mode=mode,
                    **common,
                )
            error = None if outcome.returncode == 0 else f"the step {describe_exit(outcome.returncode)}"
            return finish(outcome.returncode, error, pid=proc.pid, mode=mode, **common)
        finally:
            if proc is not None:
                proc.close()
            if zygote is not None:
                self._zygotes.release(zygote)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    def _zygote_env(self, env: TaskEnv) -> dict[str, str]:
        """The zygote's own environment (each step replaces it with its own)."""
        return step_environment({}, task_env=env.path, passthrough=self.env_passthrough)

    @staticmethod
    def _start_subprocess(
        env: TaskEnv, request: dict[str, Any], log_fd: int
    ) -> tuple[SubprocessProcess, str | None]:
        """The fallback without a zygote: a fresh process (a cold interpreter for Python steps)."""
        scratch: str | None = None
        if request["mode"] == "python":
            scratch = tempfile.mkdtemp(prefix="canal-component-")
            module_path = os.path.join(scratch, request["source_name"])
            with open(module_path, "w", encoding="utf-8") as handle:
                handle.write(request["source"])
            argv = [str(env.python), "-m", request["module"], "--component_module_path", module_path]
            argv += request["args"]
            executable = None
        else:
            argv = request["argv"]
            executable = request["executable"]
        proc = SubprocessProcess(
            argv, env=request["env"], cwd=request["cwd"], log_fd=log_fd, executable=executable
        )
        return proc, scratch

    def _stopped(
        self,
        finish: _Finish,
        reason: str,
        spec: StepSpec,
        exit_code: int | None,
        *,
        detail: str | None = None,
        **extra: Any,
    ) -> StepResult:
        message = _STOP_MESSAGES[reason].format(timeout=spec.timeout, detail=detail or "heartbeat failed")
        return finish(
            exit_code,
            message,
            timed_out=reason == "timed_out",
            canceled=reason in ("canceled", "lost"),
            **extra,
        )
