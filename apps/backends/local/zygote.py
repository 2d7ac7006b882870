"""The owner's side of a zygote: start it, hand it steps, watch them."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from apps.backends.local.process import wait_group_gone

__all__ = ["SERVER_SCRIPT", "Zygote", "ZygoteError", "ZygoteLost", "ZygoteProcess", "zygote_supported"]

logger = logging.getLogger(__name__)

SERVER_SCRIPT = Path(__file__).with_name("zygote_server.py")
_HEADER = struct.Struct("!I")
_T = TypeVar("_T")


def zygote_supported() -> bool:
    """Zygotes need fork, SCM_RIGHTS and (for dying with their owner) Linux's PDEATHSIG."""
    return sys.platform.startswith("linux") and hasattr(socket, "send_fds")


class ZygoteError(Exception):
    """The zygote could not be started or could not take the step."""


class ZygoteLost(ZygoteError):
    """The zygote died while a step it started was running."""


def _send_frame(sock: socket.socket, message: Mapping[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    sock.sendall(_HEADER.pack(len(body)) + body)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        data = sock.recv(size)
        if not data:
            return None
        chunks.append(data)
        size -= len(data)
    return b"".join(chunks)


def _recv_frame(sock: socket.socket) -> dict[str, Any] | None:
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    body = _recv_exact(sock, _HEADER.unpack(header)[0])
    if body is None:
        return None
    message = json.loads(body.decode("utf-8"))
    if not isinstance(message, dict):
        raise ZygoteError("malformed message from zygote")
    return message


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
    """One step running in a zygote child; implements the RunningProcess protocol."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self._sock = sock
        self.pid = pid
        self._returncode: int | None = None

    def wait(self, timeout: float | None) -> int | None:
        """The return code once the zygote reports the exit; raises ZygoteLost on EOF."""
        if self._returncode is not None:
            return self._returncode
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return None
        while True:
            message = _recv_frame(self._sock)
            if message is None:
                # The zygote is gone (killed outright: it had no chance to clean
                # up). Its direct child died with it (PDEATHSIG), but the step's
                # own children may still be running in its group.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                wait_group_gone(self.pid)
                raise ZygoteLost("the zygote exited while the step was running")
            if message.get("event") == "exited":
                self._returncode = int(message["returncode"])
                return self._returncode
            if message.get("event") == "error":
                raise ZygoteLost(str(message.get("message")))

    def signal_group(self, sig: int) -> None:
        """Ask the zygote to signal the step's process group (it knows whether it is reaped)."""
        if self._returncode is not None:
            return
        with contextlib.suppress(OSError):
            _send_frame(self._sock, {"op": "signal", "signal": int(sig)})

    def close(self) -> None:
        """Closing the step socket makes the zygote kill the step if it still runs."""
        self._sock.close()


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
    ) -> None:
        self.python = str(python)
        self.preload = tuple(preload)
        self.env = dict(env or {})
        self.cwd = None if cwd is None else str(cwd)
        self.log_path = None if log_path is None else str(log_path)
        self.start_timeout = start_timeout
        self.preload_errors: dict[str, str] = {}
        self._control: socket.socket | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._send_lock = threading.Lock()
        self._owner_pid = os.getpid()

    @property
    def pid(self) -> int | None:
        """The zygote's pid once started."""
        return None if self._popen is None else self._popen.pid

    def start(self) -> None:
        """Start the server from the keeper thread and wait until its imports are done."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv = [
                self.python,
                "-I",  # no user site, no PYTHON* variables, no script dir (Canal's code) on sys.path
                str(SERVER_SCRIPT),
                "--control-fd",
                str(child.fileno()),
                "--parent-pid",
                str(os.getpid()),
            ]
            for name in self.preload:
                argv += ["--preload", name]
            log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
            try:
                self._popen = _Keeper.call(
                    lambda: subprocess.Popen(
                        argv,
                        pass_fds=(child.fileno(),),
                        stdin=subprocess.DEVNULL,
                        stdout=log if log is not None else subprocess.DEVNULL,
                        stderr=log if log is not None else subprocess.DEVNULL,
                        env=self.env,
                        cwd=self.cwd,
                        start_new_session=True,
                        close_fds=True,
                    )
                )
            finally:
                if log is not None:
                    log.close()
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        parent.settimeout(self.start_timeout)
        try:
            ready = _recv_frame(parent)
        except (OSError, ValueError) as exc:
            ready = None
            logger.warning("zygote %s did not start: %s", self.python, exc)
        parent.settimeout(None)
        if not ready or not ready.get("ready"):
            parent.close()
            self._reap(kill=True)
            raise ZygoteError(f"zygote for {self.python} did not start (see {self.log_path})")
        self.preload_errors = dict(ready.get("preload_errors") or {})
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
        """Hand a step to the zygote; returns once its process exists."""
        if not self.alive() or self._control is None:
            raise ZygoteError("zygote is not running")
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._send_lock:
                socket.send_fds(self._control, [b"S"], [theirs.fileno(), log_fd])
            theirs.close()
            _send_frame(mine, request)
            message = _recv_frame(mine)
        except OSError as exc:
            mine.close()
            theirs.close()
            raise ZygoteError(f"zygote refused the step: {exc}") from exc
        if message is None or message.get("event") != "started":
            mine.close()
            detail = "it exited" if message is None else message.get("message")
            raise ZygoteError(f"zygote could not start the step: {detail}")
        return ZygoteProcess(mine, int(message["pid"]))

    def _reap(self, *, kill: bool) -> None:
        popen = self._popen
        if popen is None:
            return
        if kill and popen.poll() is None:
            popen.kill()
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()

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
