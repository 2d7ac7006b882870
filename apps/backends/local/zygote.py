"""The owner's side of a zygote: start it, hand it steps, watch them."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from apps.backends.local.process import StepChannel, wait_group_gone
from apps.backends.local.sandbox import SERVER_INSIDE, Network, Sandbox

__all__ = ["SERVER_SCRIPT", "Zygote", "ZygoteError", "ZygoteLost", "ZygoteProcess", "zygote_supported"]

logger = logging.getLogger(__name__)

SERVER_SCRIPT = Path(__file__).with_name("zygote_server.py")
_T = TypeVar("_T")


def zygote_supported() -> bool:
    """Zygotes need fork, SCM_RIGHTS and (for dying with their owner) Linux's PDEATHSIG."""
    return sys.platform.startswith("linux") and hasattr(socket, "send_fds")


class ZygoteError(Exception):
    """The zygote could not be started or could not take the step."""


class ZygoteLost(ZygoteError):
    """The zygote died while a step it started was running."""


class _Keeper:
    """A thread that lives as long as the process and starts the zygotes.

    Linux delivers PR_SET_PDEATHSIG when the *thread* that forked the child
    exits, not the process. Worker pools retire threads, so a zygote started
    from a worker thread could be killed under a busy step. Starting every
    zygote from this one daemon thread ties them to the process instead.
    """

    _lock = threading.Lock()
    _instance: _Keeper | None = None

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="canal-zygote-keeper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            fn, future = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    @classmethod
    def call(cls, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the keeper thread and return its result."""
        with cls._lock:
            # After a fork the child has no keeper thread: make a new one.
            if cls._instance is None or cls._instance._pid != os.getpid():
                cls._instance = _Keeper()
            keeper = cls._instance
        future: Future[_T] = Future()
        keeper._queue.put((fn, future))
        return future.result()


class ZygoteProcess:
    """One step running in a zygote child; implements the RunningProcess protocol.

    ``pid`` is the child's real pid (from its credentials), which leads its
    process group, even when the zygote runs in a sandbox's pid namespace.
    """

    def __init__(self, channel: StepChannel, pid: int, returncode: int | None = None) -> None:
        self.channel = channel
        self.pid = pid
        self._returncode = returncode

    @property
    def confine_error(self) -> str | None:
        """Why the step's sandbox could not be set up, if it could not."""
        return self.channel.confine_error

    def go(self) -> None:
        """Let a held step run (its resource group is set up)."""
        with contextlib.suppress(OSError):
            self.channel.send({"op": "go"})

    def wait(self, timeout: float | None) -> int | None:
        """The return code once the zygote reports the exit; raises ZygoteLost on EOF."""
        if self._returncode is not None:
            return self._returncode
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None if end is None else max(0.0, end - time.monotonic())
            try:
                message, _ = self.channel.read(wait)
            except (EOFError, OSError, ValueError):
                # The zygote is gone (killed outright: it had no chance to clean
                # up). Its direct child died with it (PDEATHSIG), but the step's
                # own children may still be running in its group.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                wait_group_gone(self.pid)
                raise ZygoteLost("the zygote exited while the step was running") from None
            if message is None:
                return None
            if message.get("event") == "exited":
                self._returncode = int(message["returncode"])
                return self._returncode
            if message.get("event") == "error" and self.channel.confine_error is None:
                raise ZygoteLost(str(message.get("message")))

    def signal_group(self, sig: int) -> None:
        """Ask the zygote to signal the step's process group (it knows whether it is reaped)."""
        if self._returncode is not None:
            return
        with contextlib.suppress(OSError):
            self.channel.send({"op": "signal", "signal": int(sig)})

    def close(self) -> None:
        """Closing the step socket makes the zygote kill the step if it still runs."""
        self.channel.close()


class Zygote:
    """A warm interpreter of one task environment, forking one process per step.

    Thread-safe: any number of threads may call ``launch`` at once; each step
    gets its own socket, and only the brief hand-over on the shared control
    socket is serialised.
    """

    def __init__(
        self,
        python: str | os.PathLike[str],
        *,
        preload: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        start_timeout: float = 120.0,
        sandbox: Sandbox | None = None,
        read_only: Sequence[str | os.PathLike[str]] = (),
        read_write: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        self.python = str(python)
        self.preload = tuple(preload)
        self.env = dict(env or {})
        self.cwd = None if cwd is None else str(cwd)
        self.log_path = None if log_path is None else str(log_path)
        self.start_timeout = start_timeout
        # With a sandbox, the zygote (and so every step it forks) sees only the host's
        # programs, ``read_only`` and ``read_write``; see apps.backends.local.sandbox.
        self.sandbox = sandbox
        self.read_only = tuple(str(p) for p in read_only)
        self.read_write = tuple(str(p) for p in read_write)
        self.preload_errors: dict[str, str] = {}
        self.host_pid: int | None = None
        self.inner_pid = 0  # its pid as its steps see it (in a sandbox's own pid namespace)
        self._control: socket.socket | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._network = Network()
        self._send_lock = threading.Lock()
        self._owner_pid = os.getpid()

    @property
    def pid(self) -> int | None:
        """The zygote's real pid once started (not its sandbox's, when it has one)."""
        return self.host_pid

    def start(self) -> None:
        """Start the server from the keeper thread and wait until its imports are done."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sandbox = self.sandbox
            argv = [
                self.python,
                "-I",  # no user site, no PYTHON* variables, no script dir (Canal's code) on sys.path
                SERVER_INSIDE if sandbox is not None else str(SERVER_SCRIPT),
                "--control-fd",
                str(child.fileno()),
                # In a sandbox the zygote's parent is the sandbox's init, in another pid
                # namespace: it cannot check for us, and dies with us instead.
                "--parent-pid",
                "0" if sandbox is not None else str(os.getpid()),
            ]
            for name in self.preload:
                argv += ["--preload", name]
            log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
            out = log if log is not None else subprocess.DEVNULL

            def spawn() -> tuple[subprocess.Popen[bytes], Network]:
                if sandbox is None:
                    popen = subprocess.Popen(
                        argv,
                        pass_fds=(child.fileno(),),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=out,
                        env=self.env,
                        cwd=self.cwd,
                        start_new_session=True,
                        close_fds=True,
                    )
                    return popen, Network()
                return sandbox.start(
                    argv,
                    mounts=sandbox.starter_mounts(read_only=self.read_only, read_write=self.read_write),
                    pass_fds=(child.fileno(),),
                    stdout=out,
                    stderr=out,
                    env=self.env,
                )

            try:
                self._popen, self._network = _Keeper.call(spawn)
            finally:
                if log is not None:
                    log.close()
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        parent.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        channel = StepChannel(parent)
        try:
            ready, host_pid = channel.read(self.start_timeout)
        except (OSError, ValueError, EOFError) as exc:
            ready = host_pid = None
            logger.warning("zygote %s did not start: %s", self.python, exc)
        if not ready or not ready.get("ready"):
            parent.close()
            self._reap(kill=True)
            raise ZygoteError(f"zygote for {self.python} did not start (see {self.log_path})")
        self.preload_errors = dict(ready.get("preload_errors") or {})
        self.host_pid = host_pid or (self._popen.pid if self._popen else None)
        self.inner_pid = int(ready.get("pid") or 0)
        try:
            self._network.connect()  # the zygote is up: its sandbox is set up, no race left
        except OSError:
            parent.close()
            self._reap(kill=True)
            raise
        self._control = parent

    def alive(self) -> bool:
        """Whether the server process is running and ours (not inherited over a fork)."""
        return (
            self._control is not None
            and self._popen is not None
            and self._popen.poll() is None
            and self._owner_pid == os.getpid()
        )

    def launch(self, request: Mapping[str, Any], log_fd: int) -> ZygoteProcess:
        """Hand a step to the zygote; returns once its process exists (and reported its pid)."""
        if not self.alive() or self._control is None:
            raise ZygoteError("zygote is not running")
        mine, theirs = StepChannel.pair()
        channel = StepChannel(mine)
        try:
            with self._send_lock:
                socket.send_fds(self._control, [b"S"], [theirs.fileno(), log_fd])
            theirs.close()
            channel.send(request)
            pid, other = channel.wait_started(self.start_timeout)
        except (OSError, EOFError, TimeoutError, ValueError) as exc:
            channel.close()
            theirs.close()
            raise ZygoteError(f"zygote could not start the step: {exc}") from exc
        if pid is None:
            assert other is not None
            if other.get("event") == "exited":
                # It died before it could report (it never ran the step's code).
                return ZygoteProcess(channel, -1, returncode=int(other["returncode"]))
            channel.close()
            raise ZygoteError(f"zygote could not start the step: {other.get('message')}")
        return ZygoteProcess(channel, pid)

    def _reap(self, *, kill: bool) -> None:
        popen = self._popen
        if popen is None:
            self._network.close()
            return
        if kill and popen.poll() is None:
            popen.kill()
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
        self._network.close()

    def close(self) -> None:
        """Closing the control socket makes the zygote kill its steps and exit."""
        if self._owner_pid != os.getpid():
            # Inherited over a fork: the zygote belongs to the parent process.
            self._control = None
            self._popen = None
            return
        if self._control is not None:
            self._control.close()
            self._control = None
        deadline = time.monotonic() + 5
        while self._popen is not None and self._popen.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        self._reap(kill=True)
