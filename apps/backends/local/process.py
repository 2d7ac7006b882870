"""Process-group plumbing shared by every way of running a step: supervision,
cancellation, timeouts, heartbeats, and the plain-subprocess runner."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from apps.backends.base import Heartbeat

__all__ = [
    "Outcome",
    "RunningProcess",
    "StarterProcess",
    "StepChannel",
    "SubprocessProcess",
    "Watch",
    "describe_exit",
    "supervise",
    "wait_group_gone",
]

logger = logging.getLogger(__name__)

# How often a waiting thread looks at the cancel event. Completion itself is
# noticed at once (we block on the process's fd); this only bounds how long a
# cancel or terminate() takes to be acted on.
CANCEL_POLL_SECONDS = 0.05


class Watch:
    """Why a step should stop (cancel, timeout, lost heartbeat), and when to beat next."""

    def __init__(
        self,
        cancel: threading.Event,
        *,
        timeout: float | None = None,
        heartbeat: Heartbeat | None = None,
        heartbeat_interval: float = 2.0,
    ) -> None:
        self.cancel = cancel
        self.timeout = timeout
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.heartbeat = heartbeat
        self.heartbeat_interval = max(0.01, heartbeat_interval)
        self.next_beat = self.started + self.heartbeat_interval
        self.lost_reason: str | None = None

    def poll(self) -> str | None:
        """'canceled', 'timed_out', 'lost' or None; beats the heartbeat when it is due."""
        now = time.monotonic()
        if self.heartbeat is not None and now >= self.next_beat and self.lost_reason is None:
            self.next_beat = now + self.heartbeat_interval
            try:
                # An explicit False is a cancel request: the way a step is
                # stopped from another process (the heartbeat reads the flag).
                if self.heartbeat() is False:
                    self.cancel.set()
            except Exception as exc:
                self.lost_reason = f"heartbeat failed ({type(exc).__name__})"
        if self.lost_reason is not None:
            return "lost"
        if self.cancel.is_set():
            return "canceled"
        if self.deadline is not None and now >= self.deadline:
            return "timed_out"
        return None

    def wait_time(self) -> float:
        """How long a waiter may block before it must call poll() again."""
        now = time.monotonic()
        wait = CANCEL_POLL_SECONDS
        if self.heartbeat is not None:
            wait = min(wait, max(0.0, self.next_beat - now))
        if self.deadline is not None:
            wait = min(wait, max(0.0, self.deadline - now))
        return wait


class RunningProcess(Protocol):
    """A started step process that leads its own process group."""

    pid: int

    def wait(self, timeout: float | None) -> int | None:
        """Block up to ``timeout``; the return code once it has exited (negative: signal)."""
        ...

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the whole process group while it is still ours."""
        ...

    def close(self) -> None:
        """Release what is held for the process."""
        ...


@dataclass(frozen=True)
class Outcome:
    """Return code, and why we stopped the process if we did."""

    returncode: int
    stopped_because: str | None


def supervise(proc: RunningProcess, watch: Watch, grace: float) -> Outcome:
    """Wait for ``proc``; on cancel/timeout/lost lease, SIGTERM its group, then SIGKILL after ``grace``."""
    reason: str | None = None
    kill_at: float | None = None
    while True:
        wait = watch.wait_time() if reason is None else CANCEL_POLL_SECONDS
        if kill_at is not None:
            wait = min(wait, max(0.0, kill_at - time.monotonic()))
        rc = proc.wait(wait)
        if rc is not None:
            return Outcome(rc, reason)
        if reason is None:
            reason = watch.poll()
            if reason is not None:
                proc.signal_group(signal.SIGTERM)
                kill_at = time.monotonic() + grace
        elif kill_at is not None and time.monotonic() >= kill_at:
            proc.signal_group(signal.SIGKILL)
            kill_at = None


def _group_has_live_members(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    # killpg(0) also succeeds for zombies that nobody has reaped yet (init in
    # a container may never reap them); only running members matter.
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def wait_group_gone(pgid: int, timeout: float = 2.0) -> bool:
    """Wait until no live process is left in group ``pgid`` (SIGKILL is asynchronous).

    Free when the step left nothing behind (the usual case): the first check
    finds the group empty. Returns False if members remain after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    while _group_has_live_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def describe_exit(returncode: int) -> str:
    """'exited with code N' or 'was killed by SIGNAME'."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


class SubprocessProcess:
    """A step run as a plain child process of this one, in its own session."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        log_fd: int,
        executable: str | None = None,
    ) -> None:
        self._popen = subprocess.Popen(
            list(argv),
            executable=executable,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            close_fds=True,
            start_new_session=True,
        )
        self.pid = self._popen.pid
        self._returncode: int | None = None
        self._pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(self.pid)
            except OSError:
                self._pidfd = None

    @classmethod
    def adopt(cls, popen: subprocess.Popen[bytes]) -> SubprocessProcess:
        """Wrap a process started elsewhere."""
        self = cls.__new__(cls)
        self._popen = popen
        self.pid = popen.pid
        self._returncode = None
        self._pidfd = None
        if hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(self.pid)
            except OSError:
                self._pidfd = None
        return self

    @property
    def returncode(self) -> int | None:
        """The exit status once reaped."""
        return self._returncode

    def _try_reap(self) -> int | None:
        if self._returncode is not None:
            return self._returncode
        info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None or info.si_pid == 0:
            return None
        # The main process is done: kill whatever it left in its group (as a
        # container runtime would) while the group id cannot yet be reused.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        self._returncode = os.waitstatus_to_exitcode(status)
        self._popen.returncode = self._returncode
        return self._returncode

    def wait(self, timeout: float | None) -> int | None:
        """Wait on the pidfd when the kernel has them, else poll."""
        rc = self._try_reap()
        if rc is not None:
            return rc
        if self._pidfd is not None:
            select.select([self._pidfd], [], [], timeout)
            return self._try_reap()
        end = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while end is None or time.monotonic() < end:
            time.sleep(delay if end is None else min(delay, max(0.0, end - time.monotonic())))
            delay = min(delay * 2, 0.05)
            rc = self._try_reap()
            if rc is not None:
                return rc
        return None

    def signal_group(self, sig: int) -> None:
        """Signal the group unless the leader was already reaped."""
        if self._returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def close(self) -> None:
        """Close the pidfd."""
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


_HEADER = struct.Struct("!I")
_CREDS = struct.Struct("3i")


class StepChannel:
    """The owner's end of a step socket (see ``zygote_server``'s protocol).

    The step itself reports ``started`` with its credentials attached, so the
    kernel tells us its pid *in our pid namespace* even when it runs in a
    sandbox's own; then ``running`` once confined, or ``error`` when its
    sandbox could not be set up.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.confine_error: str | None = None
        self.confined = False
        self._buffer = bytearray()

    @staticmethod
    def pair() -> tuple[socket.socket, socket.socket]:
        """(ours, theirs): a socket pair whose our end receives credentials."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        return ours, theirs

    def send(self, message: Mapping[str, Any]) -> None:
        """One frame to the other end."""
        body = json.dumps(message, separators=(",", ":")).encode("utf-8")
        self.sock.sendall(_HEADER.pack(len(body)) + body)

    def _fill(self, need: int, timeout: float | None) -> tuple[bool, int | None]:
        """Read until ``need`` bytes are buffered; returns (got them, sender pid of the first chunk)."""
        pid: int | None = None
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self._buffer) < need:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                return False, pid
            data, ancdata, _flags, _addr = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(_CREDS.size))
            if not data:
                raise EOFError
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and pid is None:
                    pid = _CREDS.unpack(payload[: _CREDS.size])[0]
            self._buffer += data
        return True, pid

    def read(self, timeout: float | None) -> tuple[dict[str, Any] | None, int | None]:
        """The next frame and the pid that sent its first bytes; (None, None) on timeout.

        Raises EOFError when the other end is gone.
        """
        got, pid = self._fill(_HEADER.size, timeout)
        if not got:
            return None, None
        (size,) = _HEADER.unpack_from(self._buffer)
        self._fill(_HEADER.size + size, None)
        body = bytes(self._buffer[_HEADER.size : _HEADER.size + size])
        del self._buffer[: _HEADER.size + size]
        message = json.loads(body.decode("utf-8"))
        if not isinstance(message, dict):
            raise ValueError("malformed frame")
        if message.get("event") == "running":
            self.confined = True
        elif message.get("event") == "error":
            self.confine_error = str(message.get("message"))
        return message, pid

    def wait_started(self, timeout: float) -> tuple[int | None, dict[str, Any] | None]:
        """(real pid, None) once the step reported; (None, the frame) if something else came first."""
        while True:
            message, pid = self.read(timeout)
            if message is None:
                raise TimeoutError("the step did not report that it started")
            if message.get("event") == "started":
                return (pid if pid else int(message["pid"])), None
            return None, message

    def close(self) -> None:
        """Close our end."""
        self.sock.close()


class StarterProcess:
    """A step that a one-off starter process becomes (``zygote_server --run-once``),
    optionally inside an outer sandbox: implements RunningProcess.

    ``popen`` is the starter (or bwrap around it): its exit status is the step's.
    ``pid`` is the step's real pid, learnt from its credentials, and leads the
    step's process group.
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        channel: StepChannel,
        *,
        on_close: Callable[[], Any] | None = None,
    ) -> None:
        self._proc = SubprocessProcess.adopt(popen)
        self.channel = channel
        self.pid = popen.pid
        self._on_close = on_close
        self._signal_pid: int | None = None

    def started(self, timeout: float = 60.0) -> None:
        """Wait for the step to report (its real pid); raises if it exited first."""
        try:
            pid, _other = self.channel.wait_started(timeout)
        except (EOFError, TimeoutError, ValueError, OSError) as exc:
            raise OSError(f"the step's starter failed before the step started ({exc})") from None
        if pid is not None:
            self.pid = pid
            self._signal_pid = pid

    @property
    def confine_error(self) -> str | None:
        """Why the step's sandbox could not be set up, if it could not."""
        return self.channel.confine_error

    def wait(self, timeout: float | None) -> int | None:
        """The starter's exit status once it has ended; frames from the step are read meanwhile."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            rc = self._proc.wait(0)
            if rc is not None:
                self._drain()
                return rc
            wait = 0.05 if end is None else max(0.0, min(0.05, end - time.monotonic()))
            ready, _, _ = select.select([self.channel.sock], [], [], wait)
            if ready:
                self._drain()
            rc = self._proc.wait(0 if ready else 0.0)
            if rc is not None:
                self._drain()
                return rc
            if end is not None and time.monotonic() >= end:
                return None

    def _drain(self) -> None:
        with contextlib.suppress(EOFError, ValueError, OSError):
            while True:
                message, _ = self.channel.read(0)
                if message is None:
                    return

    def signal_group(self, sig: int) -> None:
        """Signal the step's group while the starter still runs (so the group cannot be reused)."""
        if self._proc.returncode is not None:
            return
        target = self._signal_pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if target is not None:
                os.killpg(target, sig)
            else:
                self._proc.signal_group(sig)

    def close(self) -> None:
        """Release the pidfd and the socket."""
        self._proc.close()
        self.channel.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None
