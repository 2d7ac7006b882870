"""The local execution backend: every step is a host process in its own process group."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from apps.backends.base import (
    BackendError,
    ExecutionBackend,
    Heartbeat,
    StartedCallback,
    StepResult,
    StepSpec,
    register_backend,
)
from apps.backends.local.environment import process_environment
from apps.backends.local.limits import CgroupTree
from apps.backends.local.prelude import (
    EXECUTOR_MODULE,
    LightweightCommand,
    PipInstall,
    parse_lightweight_command,
)
from apps.backends.local.process import Watch
from apps.backends.local.runner import StepRunner, force_rmtree
from apps.backends.local.sandbox import Sandbox, SandboxConfig
from apps.backends.local.taskenv import EnvSpec, TaskEnv, TaskEnvManager
from apps.backends.local.zygote import Zygote, ZygoteError, zygote_supported

__all__ = ["DEFAULT_KFP_VERSION", "CommandPlan", "LocalBackend"]

TRASH_BATCH = 256  # scratch directories removed by one rm

logger = logging.getLogger(__name__)

# kfp version for lightweight commands that install nothing themselves
# (install_kfp_package=False: the image is expected to provide kfp).
DEFAULT_KFP_VERSION = "2.14.6"
_ZYGOTE_RETRY_SECONDS = 60.0


@dataclass
class CommandPlan:
    """How a command runs: its task environment, and whether it is a lightweight component."""

    env_spec: EnvSpec
    lightweight: LightweightCommand | None
    preload: tuple[str, ...]


_PoolKey = tuple[str, tuple[str, ...], str]


class _ZygotePool:
    """One zygote per (task environment, preload), started on first use, LRU-bounded."""

    def __init__(self, max_zygotes: int, make: Callable[[TaskEnv, tuple[str, ...], Path], Zygote]) -> None:
        self.max_zygotes = max(1, max_zygotes)
        self._make = make
        self._zygotes: OrderedDict[_PoolKey, Zygote] = OrderedDict()
        self._in_use: dict[Zygote, int] = {}  # steps running in each zygote
        self._failed_at: dict[_PoolKey, float] = {}
        self._start_locks: dict[_PoolKey, threading.Lock] = {}
        self._lock = threading.Lock()

    def acquire(self, env: TaskEnv, preload: tuple[str, ...], tenant_dir: Path) -> Zygote | None:
        """A running zygote for ``env`` serving ``tenant_dir``'s steps, counted as in use until
        ``release``; None if it cannot start. Tenants never share a zygote: it sees their files."""
        key = (str(env.path), preload, str(tenant_dir))
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
            zygote = self._make(env, preload, tenant_dir)
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

    def pids(self, *, inner: bool = False) -> list[int]:
        """Real pids of the running zygotes (``inner``: as their steps see them)."""
        with self._lock:
            zygotes = [z for z in self._zygotes.values() if z.pid is not None and z.alive()]
        return [z.inner_pid if inner else z.pid for z in zygotes if z.pid is not None]

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
    """Runs steps as sandboxed host processes; images are recorded, never pulled.

    Lightweight Python components (the kfp-generated command) run in a
    cached task environment that already holds what their prelude would
    pip-install, forked from a warm interpreter (the zygote) of that
    environment. Every other command runs as written, argv as a list, with
    a base task environment first on PATH. Each step gets a sanitised
    environment, its own process group and sandbox (``sandbox.py``), its
    resource limits (``limits.py``), and writes stdout and stderr straight
    into its log file. ``StepRunner`` (``runner.py``) is one step's whole path.
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
        sandbox: SandboxConfig | Sandbox | None = None,
        cgroup_root: str | None = None,
        work_root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.sandbox = sandbox if isinstance(sandbox, Sandbox) else Sandbox(sandbox, python=base_python)
        self.envs = envs or TaskEnvManager(env_cache_dir, base_python=base_python, installer=installer)
        if self.envs.sandbox is None:
            self.envs.sandbox = self.sandbox
        self.use_zygote = use_zygote and zygote_supported()
        self.terminate_grace = terminate_grace
        self.heartbeat_interval = heartbeat_interval
        self.env_passthrough = tuple(env_passthrough)
        self.default_kfp_version = default_kfp_version
        self.cgroup_root = cgroup_root
        self.work_root = Path(work_root) if work_root is not None else None
        self._cgroups: CgroupTree | None = None
        self._cgroups_probed = False
        self._max_zygotes = max_zygotes
        self.zygotes = _ZygotePool(max_zygotes, self._make_zygote)
        self._active: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()
        self._trash: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._trash_thread: threading.Thread | None = None

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
        if self.sandbox.config.mode == "on" and not self.sandbox.active:
            raise BackendError("CANAL_STEP_SANDBOX=on but " + self.sandbox.status().summary())
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
            if not self.sandbox.active:
                os.write(log_fd, f"[canal] WARNING: {self.sandbox.status().summary()}\n".encode())
            return StepRunner(self, spec, watch, log_fd, on_started).run()
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

    def prepare(self, argv: Iterable[str], *, tenant: str = "", tenant_dir: Path | None = None) -> TaskEnv:
        """Build the task environment for a command and start its zygote, ahead of the step.

        Optional: ``run`` does the same on first use. Calling it for every
        executor when a run starts builds environments before the first step
        needs them, and keeps the zygote start (≈0.1 s) off the critical path.
        """
        self._check_fork()
        plan = self.plan(argv, tenant=tenant)
        env, _ = self.envs.ensure(plan.env_spec)
        if self.use_zygote:
            zygote = self.zygotes.acquire(env, plan.preload, tenant_dir or self.default_tenant_dir(tenant))
            if zygote is not None:
                self.zygotes.release(zygote)
        return env

    def running_steps(self) -> list[str]:
        """Ids of the steps running on this backend now."""
        with self._lock:
            return sorted(self._active)

    def zygote_pids(self, *, inner: bool = False) -> list[int]:
        """Pids of this backend's live zygotes (``inner``: as seen by their steps)."""
        return self.zygotes.pids(inner=inner)

    def close(self) -> None:
        """Stop the zygotes (steps still running in them are killed); empty the trash."""
        self.zygotes.close()
        if self._trash_thread is not None:
            self._trash.put(None)
            self._trash_thread.join(timeout=60)
            self._trash_thread = None

    def discard_later(self, path: Path) -> None:
        """Remove a finished step's scratch space in the background (a few ms a step that
        the next step of a chain should not wait for)."""
        with self._lock:
            if self._trash_thread is None or not self._trash_thread.is_alive():
                self._trash_thread = threading.Thread(
                    target=self._empty_trash, name="canal-trash", daemon=True
                )
                self._trash_thread.start()
        self._trash.put(path)

    def _empty_trash(self) -> None:
        # What piled up is removed by one ``rm -rf`` (C, outside this process's GIL: a
        # Python rmtree per step competed with the steps' threads for it, a fifth of a
        # 1,000-step fan-out's worker time); force_rmtree then takes what rm could not
        # (directories a step left without permissions, when not root).
        while True:
            batch = [self._trash.get()]
            while len(batch) < TRASH_BATCH:
                try:
                    batch.append(self._trash.get_nowait())
                except queue.Empty:
                    break
            paths = [path for path in batch if path is not None]
            if paths:
                self._remove(paths)
            if None in batch:
                return

    @staticmethod
    def _remove(paths: list[Path]) -> None:
        # No rm, or one that hung: force_rmtree below does it all.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["rm", "-rf", "--one-file-system", "--", *map(str, paths)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
                timeout=600,
            )
        for path in paths:
            try:
                force_rmtree(path)
            except Exception:
                logger.exception("could not remove %s", path)

    def plan(self, argv: Iterable[str], *, tenant: str = "") -> CommandPlan:
        """Decide how an argv runs: its task environment and whether it is a lightweight component."""
        lightweight = parse_lightweight_command(list(argv))
        if lightweight is None:
            return CommandPlan(env_spec=EnvSpec(tenant=tenant), lightweight=None, preload=())
        installs = lightweight.installs or (
            PipInstall(requirements=(f"kfp=={self.default_kfp_version}",), no_deps=True),
        )
        return CommandPlan(
            env_spec=EnvSpec(installs, tenant=tenant), lightweight=lightweight, preload=(EXECUTOR_MODULE,)
        )

    def default_tenant_dir(self, tenant: str) -> Path:
        """Where steps given no work directory get one: per tenant, under the work root."""
        root = self.work_root or Path(tempfile.gettempdir()) / f"canal-steps-{os.geteuid()}"
        path = root / (tenant or "_default")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cgroups(self) -> CgroupTree | None:
        """Where per-step cgroups go, if this process may make them (found once)."""
        if not self._cgroups_probed:
            self._cgroups_probed = True
            tree = CgroupTree(self.cgroup_root)
            self._cgroups = tree if tree.available else None
            if tree.available:
                logger.info("resource limits: %s", tree.describe())
            else:
                logger.warning("resource limits: %s; using rlimits and CPU affinity instead", tree.describe())
        return self._cgroups

    def limits_mechanism(self) -> str:
        """How memory and CPU limits are enforced here, in words."""
        tree = self.cgroups()
        if tree is None:
            return "RLIMIT_AS for memory and CPU affinity for CPU (no writable cgroups)"
        return tree.describe()

    # -- internals -------------------------------------------------------
    def _check_fork(self) -> None:
        # A worker pool that forks after the backend was made (Celery prefork)
        # must not share the parent's zygote sockets: start afresh.
        if os.getpid() != self._owner_pid:
            self.zygotes.close()
            self.zygotes = _ZygotePool(self._max_zygotes, self._make_zygote)
            self._active = {}
            self._lock = threading.Lock()
            self._owner_pid = os.getpid()

    @staticmethod
    def _open_log(path: Path | None) -> int:
        if path is None:
            return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def _make_zygote(self, env: TaskEnv, preload: tuple[str, ...], tenant_dir: Path) -> Zygote:
        sandboxed = self.sandbox.active
        if sandboxed:
            self.sandbox.prepare_dirs(tenant_dir)
        logs = self.envs.cache_dir / "zygote-logs"
        logs.mkdir(parents=True, exist_ok=True)
        return Zygote(
            env.python,
            preload=preload,
            env=process_environment({}, task_env=env.path, passthrough=self.env_passthrough),
            cwd=env.path,
            log_path=logs / f"{env.key}.log",
            sandbox=self.sandbox if sandboxed else None,
            read_only=[env.path],
            read_write=[tenant_dir],
        )
