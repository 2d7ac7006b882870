"""Cached, isolated task environments: one virtualenv per (python, packages, index options).

A lightweight component's prelude would run ``pip install kfp==X --no-deps
<packages>`` before every step (≈1 s even when nothing changes). Instead the
backend builds a virtualenv with exactly those installs once, under a cache
directory, and runs every later step with the same installs in it directly.

Building is safe across threads and processes: an exclusive ``flock`` on
``<key>.lock`` serialises builders, and ``<key>/canal-ready.json`` is written
atomically last, so an environment either is complete or is rebuilt from
scratch. Nothing is ever installed into the caller's interpreter.

With a sandbox, the installer runs inside it like a step (it runs packages'
build scripts: untrusted code), seeing only the environment being built and
its tenant's own installer cache. Environments and caches are per tenant
(namespace), so one namespace can never plant a package in another's
environment. A finished environment is mounted read-only into every sandbox,
and each step gets a throw-away overlay on top: nothing a step installs
outlives it. (It stays owned by the steps' uid: the overlay can only copy up
files whose owner exists in the step's user namespace.)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from apps.backends.local.environment import process_environment
from apps.backends.local.prelude import PipInstall
from apps.backends.local.process import Watch, describe_exit, supervise
from apps.backends.local.sandbox import PRIVATE_TMP, Sandbox
from apps.backends.local.starter import start_once

__all__ = ["EnvBuildError", "EnvInterrupted", "EnvSpec", "TaskEnv", "TaskEnvManager", "default_cache_dir"]

logger = logging.getLogger(__name__)

READY_MARKER = "canal-ready.json"
INSTALL_LOG = "canal-install.log"
#: 2: uv writes the installed modules' bytecode at build time (pip always did). A step's
#: environment is a read-only layer under a throw-away overlay, so bytecode missing there
#: was compiled again by every step and every warm process that imported the module.
_FORMAT_VERSION = 2


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/canal/envs``, else ``~/.cache/canal/envs``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "canal" / "envs"


class EnvBuildError(Exception):
    """Building a task environment failed; ``log`` has the installer's output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class EnvInterrupted(Exception):
    """Building was stopped: ``reason`` is 'canceled', 'timed_out' or 'lost'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class EnvSpec:
    """What goes into a task environment: the prelude's pip installs, in order, for one tenant."""

    installs: tuple[PipInstall, ...] = ()
    tenant: str = ""

    def canonical(self) -> list[dict[str, object]]:
        """A JSON-able form in which equivalent specs are equal (requirements sorted)."""
        out: list[dict[str, object]] = []
        for install in self.installs:
            item = asdict(install)
            item["requirements"] = sorted(install.requirements)
            out.append(item)
        return out

    def describe(self) -> str:
        """Short human description for logs."""
        reqs = [r for install in self.installs for r in install.requirements]
        return ", ".join(reqs) if reqs else "no packages"


@dataclass(frozen=True)
class TaskEnv:
    """A ready virtualenv."""

    key: str
    path: Path

    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        return self.path / "bin" / "python"

    @property
    def bin_dir(self) -> Path:
        """Its bin directory (first on a step's PATH)."""
        return self.path / "bin"

    @property
    def ready_marker(self) -> Path:
        """Written last, atomically, when the environment is complete."""
        return self.path / READY_MARKER


def _find_uv() -> str | None:
    # The `uv` wheel ships its binary; find it without importing anything heavy.
    spec = importlib.util.find_spec("uv")
    if spec is not None and spec.origin:
        try:
            import uv

            return str(uv.find_uv_bin())
        except (ImportError, FileNotFoundError, AttributeError):
            pass
    return shutil.which("uv")


class TaskEnvManager:
    """Creates and finds task environments under ``cache_dir``.

    ``base_python`` is the interpreter environments are made from (default:
    the one behind the caller's own venv). ``installer`` is ``"uv"`` (much
    faster to build), ``"pip"``, or ``"auto"`` (uv when it can be found).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        base_python: str | None = None,
        installer: str = "auto",
        uv_path: str | None = None,
        install_timeout: float | None = 3600.0,
        sandbox: Sandbox | None = None,
    ) -> None:
        if installer not in ("auto", "uv", "pip"):
            raise ValueError("installer must be 'auto', 'uv' or 'pip'")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.base_python = base_python or getattr(sys, "_base_executable", None) or sys.executable
        self.uv_path = uv_path if uv_path is not None else (_find_uv() if installer != "pip" else None)
        if self.uv_path:
            # The sandbox shows the installer at its real path only: a virtualenv reached
            # through a symlink (a git worktree's .venv) must not hide it.
            self.uv_path = os.path.realpath(self.uv_path)
        if installer == "uv" and not self.uv_path:
            raise ValueError("installer 'uv' requested but no uv binary was found")
        self.installer = "uv" if (installer != "pip" and self.uv_path) else "pip"
        self.install_timeout = install_timeout
        self.sandbox = sandbox
        self.installer_runs = 0  # installer processes started by this manager (tests and metrics)
        self._python_tag: str | None = None
        self._ready: dict[str, TaskEnv] = {}
        self._lock = threading.Lock()

    # -- keys ------------------------------------------------------------
    def python_tag(self) -> str:
        """Implementation and full version of the base interpreter, e.g. ``cpython-3.11.7``."""
        if self._python_tag is None:
            if os.path.realpath(self.base_python) == os.path.realpath(
                getattr(sys, "_base_executable", sys.executable)
            ):
                tag = f"{sys.implementation.name}-{'.'.join(map(str, sys.version_info[:3]))}"
            else:
                probe = (
                    "import sys;print(sys.implementation.name+'-'+'.'.join(map(str,sys.version_info[:3])))"
                )
                out = subprocess.run(
                    [self.base_python, "-I", "-c", probe],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=60,
                )
                name, *version = out.stdout.strip().split(".")
                tag = f"{name}-{'.'.join(version)}"
            self._python_tag = tag
        return self._python_tag

    def key(self, spec: EnvSpec) -> str:
        """Directory name of the environment for ``spec``."""
        body: dict[str, object] = {
            "v": _FORMAT_VERSION,
            "python": self.python_tag(),
            "installs": spec.canonical(),
        }
        if spec.tenant:
            body["tenant"] = spec.tenant
        payload = json.dumps(body, sort_keys=True)
        digest = hashlib.sha256(payload.encode()).hexdigest()[:20]
        return f"{self.python_tag()}-{digest}"

    # -- lookup / build --------------------------------------------------
    def lookup(self, spec: EnvSpec) -> TaskEnv | None:
        """The environment if it is ready, without building anything."""
        key = self.key(spec)
        env = self._ready.get(key)
        if env is not None:
            return env
        env = TaskEnv(key=key, path=self.cache_dir / key)
        if env.ready_marker.is_file():
            with self._lock:
                self._ready[key] = env
            return env
        return None

    def _adopt(self, env: TaskEnv) -> None:
        """An environment built without the sandbox (by Canal's own uid) becomes the steps'
        uid's, once: a step's overlay can copy up only files whose owner it can map."""
        sandbox = self.sandbox if (self.sandbox is not None and self.sandbox.active) else None
        uid = sandbox.step_uid if sandbox is not None else None
        if sandbox is None or uid is None or env.path.stat().st_uid == uid:
            return
        for dirpath, dirnames, filenames in os.walk(env.path):
            os.lchown(dirpath, uid, sandbox.gid)
            for name in (*dirnames, *filenames):
                os.lchown(os.path.join(dirpath, name), uid, sandbox.gid)

    def ensure(
        self, spec: EnvSpec, *, watch: Watch | None = None, log_fd: int | None = None
    ) -> tuple[TaskEnv, bool]:
        """The ready environment for ``spec``, building it if needed; returns (env, built_now).

        While another thread or process builds the same environment this
        waits for it. ``watch`` lets a cancel, timeout or lost heartbeat
        interrupt the wait or the build (EnvInterrupted). Installer output is
        kept in the environment's ``canal-install.log`` and, when ``log_fd``
        is given, a summary goes to the step's log.
        """
        ready = self.lookup(spec)
        if ready is not None:
            self._adopt(ready)  # one stat when there is nothing to do
            return ready, False
        key = self.key(spec)
        env = TaskEnv(key=key, path=self.cache_dir / key)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with self._locked(self.cache_dir / f"{key}.lock", watch):
            if env.ready_marker.is_file():
                with self._lock:
                    self._ready[key] = env
                return env, False
            self._build(spec, env, watch, log_fd)
        with self._lock:
            self._ready[key] = env
        return env, True

    @contextlib.contextmanager
    def _locked(self, lock_path: Path, watch: Watch | None) -> Iterator[None]:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    reason = watch.poll() if watch is not None else None
                    if reason is not None:
                        raise EnvInterrupted(reason) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _installer_commands(self, env: TaskEnv, spec: EnvSpec) -> list[list[str]]:
        commands: list[list[str]] = []
        if self.installer == "uv":
            assert self.uv_path is not None
            commands.append(
                [self.uv_path, "venv", "--quiet", "--seed", "--python", self.base_python, str(env.path)]
            )
            for install in spec.installs:
                cmd = [self.uv_path, "pip", "install", "--quiet", "--python", str(env.python)]
                cmd.append("--compile-bytecode")  # as pip does (see _FORMAT_VERSION)
                # pip merges all indexes; uv by default stops at the first that has
                # the package. Keep pip's behaviour since these commands were written for pip.
                cmd += ["--index-strategy", "unsafe-best-match"]
                if install.index_url:
                    cmd += ["--index-url", install.index_url]
                for url in install.extra_index_urls:
                    cmd += ["--extra-index-url", url]
                for host in install.trusted_hosts:
                    cmd += ["--allow-insecure-host", host]
                if install.no_deps:
                    cmd.append("--no-deps")
                commands.append(cmd + list(install.requirements))
        else:
            commands.append([self.base_python, "-m", "venv", str(env.path)])
            for install in spec.installs:
                commands.append(
                    [
                        str(env.python),
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--no-warn-script-location",
                        "--disable-pip-version-check",
                        *install.pip_options(),
                        *install.requirements,
                    ]
                )
        return commands

    def installer_cache(self, spec: EnvSpec) -> Path:
        """The installer's download cache for this tenant (never shared between tenants), per uid
        the installer runs as (a cache written by one uid is not writable by another)."""
        sandbox = self.sandbox if (self.sandbox is not None and self.sandbox.active) else None
        uid = sandbox.step_uid if sandbox is not None and sandbox.step_uid is not None else os.geteuid()
        return self.cache_dir / "installer-cache" / f"{spec.tenant or '_shared'}.{uid}"

    def _build(self, spec: EnvSpec, env: TaskEnv, watch: Watch | None, log_fd: int | None) -> None:
        started = time.monotonic()
        if env.path.exists():
            shutil.rmtree(env.path)  # a build that died half-way
        log_path = self.cache_dir / f"{env.key}.{os.getpid()}.install.log"
        _note(
            log_fd,
            f"[canal] building task environment {env.path.name} ({spec.describe()}) with {self.installer}\n",
        )
        cache = self.installer_cache(spec)
        sandbox = self.sandbox if (self.sandbox is not None and self.sandbox.active) else None
        for directory in (env.path, cache):
            directory.mkdir(parents=True, exist_ok=True)
            if sandbox is not None and sandbox.step_uid is not None:
                # The installer runs as the steps' uid; it may write only these two.
                os.chown(directory, sandbox.step_uid, sandbox.gid)
        install_env = process_environment(
            {"UV_CACHE_DIR": str(cache), "PIP_CACHE_DIR": str(cache), "HOME": str(cache)},
            task_env=env.path,
        )
        watch = watch or Watch(threading.Event(), timeout=self.install_timeout)
        try:
            with open(log_path, "ab") as log:
                for command in self._installer_commands(env, spec):
                    log.write(("$ " + " ".join(command) + "\n").encode())
                    log.flush()
                    self._run_installer(command, install_env, log.fileno(), watch, env, cache)
        except EnvBuildError as exc:
            text = log_path.read_text(errors="replace")
            _note(log_fd, text)
            shutil.rmtree(env.path, ignore_errors=True)
            log_path.unlink(missing_ok=True)
            raise EnvBuildError(str(exc), text) from None
        except BaseException:
            shutil.rmtree(env.path, ignore_errors=True)
            log_path.unlink(missing_ok=True)
            raise
        os.replace(log_path, env.path / INSTALL_LOG)
        elapsed = time.monotonic() - started
        marker = {
            "created_at": datetime.now(UTC).isoformat(),
            "python": self.python_tag(),
            "base_python": self.base_python,
            "installer": self.installer,
            "installs": spec.canonical(),
            "tenant": spec.tenant,
            "sandboxed": sandbox is not None,
            "seconds": round(elapsed, 3),
        }
        tmp = env.path / f".{READY_MARKER}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(marker, indent=2))
        os.replace(tmp, env.ready_marker)
        _note(log_fd, f"[canal] task environment ready in {elapsed:.1f}s\n")
        logger.info("built task environment %s in %.1fs", env.path, elapsed)

    def _installer_paths(self) -> list[str]:
        """Host files the installer needs to see read-only: itself, and local package indexes."""
        paths = []
        if self.uv_path:
            paths.append(os.path.realpath(self.uv_path))
        for name in ("PIP_FIND_LINKS", "UV_FIND_LINKS", "PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            for item in os.environ.get(name, "").split():
                path = item.removeprefix("file://")
                if path.startswith("/") and os.path.exists(path):
                    paths.append(path)
        return paths

    def _run_installer(
        self,
        command: Sequence[str],
        env: dict[str, str],
        log_fd: int,
        watch: Watch,
        task_env: TaskEnv,
        cache: Path,
    ) -> None:
        with self._lock:
            self.installer_runs += 1
        sandbox = self.sandbox if (self.sandbox is not None and self.sandbox.active) else None
        # The installer is started like a step: in the sandbox when there is one. Its
        # working directory is private (never a project's pyproject.toml or .venv).
        workdir = PRIVATE_TMP if sandbox is not None else str(self.cache_dir)
        request = {
            "mode": "exec",
            "argv": list(command),
            "executable": command[0],
            "env": env,
            "cwd": workdir,
            "confine": {"no_new_privs": True},
        }
        try:
            proc = start_once(
                request,
                python=self.base_python,
                log_fd=log_fd,
                env=env,
                sandbox=sandbox,
                read_only=self._installer_paths(),
                read_write=[task_env.path, cache],
            )
        except OSError as exc:
            raise EnvBuildError(
                f"building the task environment failed: cannot start the installer ({exc})"
            ) from None
        try:
            outcome = supervise(proc, watch, grace=5.0)
        finally:
            proc.close()
        if outcome.stopped_because is not None:
            raise EnvInterrupted(outcome.stopped_because)
        if outcome.returncode != 0:
            tool = Path(command[0]).name
            raise EnvBuildError(
                f"building the task environment failed: {tool} {describe_exit(outcome.returncode)}"
            )


def _note(fd: int | None, text: str) -> None:
    if fd is None or not text:
        return
    with contextlib.suppress(OSError):
        os.write(fd, text.encode("utf-8", "replace"))
