"""Process-group plumbing shared by every way of running a step: supervision,
cancellation, timeouts, heartbeats, and the plain-subprocess runner."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from apps.backends.base import Heartbeat

__all__ = [
    "Outcome",
    "RunningProcess",
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
