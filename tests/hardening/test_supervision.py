"""Acceptance check "Supervision" (issue 9): under the supervisor `make run` starts
(`manage.py canal_supervise`, the same command and generated config, here in a temp
CANAL_DATA_DIR on a free port), `kill -9` of the worker and of its children mid-step
leaves the web answering, the supervisor starts a new worker, and the run in flight is
retried as the README describes (its step's lease lapses, the reaper retries it) and
succeeds. A killed scheduler comes back too. Ctrl-C (SIGINT to the process group)
then stops everything and leaves no process behind.

The supervised processes share this test's database (DATABASE_URL), so the test reads
heartbeats and attempts directly; the run itself is created through the API.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.models import ProcessHeartbeat
from apps.core.services import api_token_create, user_ensure
from apps.runs.models import Task
from tests.live import process_env, processes_with_env, wait_for_run, wait_until
from tests.paths import PROJECT
from tests.runs.ir import container_pipeline

pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Notice deaths within seconds: step leases of 4 s, process heartbeats every 0.5 s.
FAST = {
    "CANAL_HEARTBEAT_SECONDS": "0.5",
    "CANAL_TASK_LEASE_SECONDS": "4",
    "CANAL_PROCESS_HEARTBEAT_SECONDS": "0.5",
    "CANAL_PROCESS_STALE_SECONDS": "3",
    "CANAL_SCHEDULER_TICK_SECONDS": "0.5",
    "CANAL_WEB_WORKERS": "1",
    "CANAL_WORKER_CONCURRENCY": "4",
}
# A step that takes a while, so the worker dies while it runs; any attempt succeeds.
SLOW_STEP = ["sh", "-c", "echo started; sleep 6; echo finished"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return out


def _descendants(pid: int) -> list[int]:
    found, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += _children(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time): a pid that was reused by another process does not match."""
    try:
        return pid, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(identity: tuple[int, str]) -> bool:
    now = _identity(identity[0])
    if now != identity:
        return False
    state = Path(f"/proc/{identity[0]}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


class Supervised:
    """`manage.py canal_supervise` as `make run` starts it, in its own process group
    (as in a terminal: Ctrl-C is SIGINT to that group)."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_port()
        self.data_dir = tmp_path / "data"
        self.env = process_env(
            **FAST, CANAL_DATA_DIR=str(self.data_dir), HOST="127.0.0.1", PORT=str(self.port)
        )
        self.log_path = tmp_path / "supervisor.log"
        # Append mode: supervisord and the programs all write to this one file.
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "canal_supervise"],
            cwd=PROJECT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: set[tuple[int, str]] = set()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> str:
        """supervisord's own log: spawns, exits, restarts."""
        path = self.data_dir / "logs" / "supervisord.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def health(self) -> tuple[int, dict[str, Any]]:
        """GET /healthz: (status, body); a refused connection is (0, {})."""
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except OSError:
            return 0, {}

    def api(self, path: str, body: dict[str, Any], token: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/apis/v2beta1/{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def program_pid(self, needle: str) -> int:
        """The pid of the supervised program whose command line contains ``needle``."""
        pids = [pid for pid in _children(self.proc.pid) if needle in _cmdline(pid)]
        assert len(pids) == 1, (needle, pids, [_cmdline(p) for p in _children(self.proc.pid)])
        return pids[0]

    def remember_tree(self) -> None:
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            identity = _identity(pid)
            if identity:
                self.seen.add(identity)

    def ctrl_c(self, timeout: float = 90) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def cleanup(self) -> None:
        """Whatever happened, leave nothing running."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                self.ctrl_c(timeout=60)
        for pid, start in self.seen | {i for p in processes_with_env(self.marker) if (i := _identity(p))}:
            if _identity(pid) == (pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    @property
    def marker(self) -> str:
        return f"CANAL_DATA_DIR={self.data_dir}"


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Supervised]:
    stack = Supervised(tmp_path)
    try:
        yield stack
    finally:
        stack.cleanup()
        print(f"\nsupervisor output: {stack.log_path}")


def _fresh_heartbeat(kind: str, *, not_pid: int | None = None) -> ProcessHeartbeat | None:
    from datetime import timedelta

    from django.utils import timezone

    fresh = ProcessHeartbeat.objects.filter(kind=kind, last_seen__gte=timezone.now() - timedelta(seconds=3))
    if not_pid is not None:
        fresh = fresh.exclude(pid=not_pid)
    return fresh.first()


def _web_keeps_answering_until(stack: Supervised, predicate: Any, what: str, timeout: float = 120) -> int:
    """Poll /healthz until ``predicate()``; every answer must be a 200. Returns how many."""
    answers = 0
    deadline = time.monotonic() + timeout
    while True:
        status, body = stack.health()
        assert status == 200, f"the web stopped answering while waiting for {what}: {status} {body}"
        answers += 1
        if predicate():
            return answers
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{stack.events()}")
        time.sleep(0.2)


def test_killed_worker_and_scheduler_are_restarted_while_web_answers(supervised: Supervised) -> None:
    stack = supervised
    wait_until(
        lambda: stack.health()[1].get("status") == "ok",
        timeout=180,
        what=f"web, worker and scheduler to be alive under the supervisor\n{stack.output()[-4000:]}",
    )
    worker_pid = stack.program_pid("celery")
    scheduler_pid = stack.program_pid("canal_scheduler")
    web_pid = stack.program_pid("gunicorn")
    assert _fresh_heartbeat("worker").pid == worker_pid  # type: ignore[union-attr]

    # A run, through the API, whose one step takes a few seconds.
    user, _ = user_ensure(actor=OPERATOR, username="ops", superuser=True)
    _, token = api_token_create(actor=OPERATOR, user=user)
    spec = container_pipeline(
        "supervised", {"slow": {"command": SLOW_STEP, "retry": {"maxRetryCount": 2, "backoffDuration": "0s"}}}
    )
    run_id = stack.api("runs", {"display_name": "in flight", "pipeline_spec": spec}, token)["run_id"]

    def step_started() -> bool:
        task = Task.objects.filter(run_id=run_id, key="root/slow", state=RuntimeState.RUNNING).first()
        return bool(task and task.log_path and "started" in Path(task.log_path).read_text())

    wait_until(step_started, timeout=120, what="the step to be running")

    # kill -9 the worker and everything it started (the step's shell and sleep).
    victims = [worker_pid, *_descendants(worker_pid)]
    assert len(victims) >= 2, "the running step should be a child of the worker"
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    answers = _web_keeps_answering_until(
        stack, lambda: _fresh_heartbeat("worker", not_pid=worker_pid), "a new worker's heartbeat"
    )
    assert answers >= 1
    new_worker = stack.program_pid("celery")
    assert new_worker != worker_pid
    assert stack.program_pid("gunicorn") == web_pid  # the web server was never restarted
    assert stack.program_pid("canal_scheduler") == scheduler_pid
    assert "exited: worker (terminated by SIGKILL; not expected)" in stack.events()
    assert f"spawned: 'worker' with pid {new_worker}" in stack.events()

    # The run in flight: the step's lease lapsed, the reaper retried it, the new worker ran it.
    run = wait_for_run(run_id, timeout=180)
    assert run.state == RuntimeState.SUCCEEDED, run.error
    attempts = list(Task.objects.get(run_id=run_id, key="root/slow").attempts.order_by("number"))
    assert [a.state for a in attempts] == [RuntimeState.FAILED, RuntimeState.SUCCEEDED]
    assert "stopped heartbeating" in attempts[0].error
    assert "finished" in Path(attempts[1].log_path).read_text()
    assert "finished" not in Path(attempts[0].log_path).read_text()  # the first was really killed

    # The scheduler: killed, restarted, and the web never stops answering.
    os.kill(scheduler_pid, signal.SIGKILL)
    _web_keeps_answering_until(
        stack, lambda: _fresh_heartbeat("scheduler", not_pid=scheduler_pid), "a new scheduler's heartbeat"
    )
    assert "exited: scheduler (terminated by SIGKILL; not expected)" in stack.events()
    assert stack.program_pid("gunicorn") == web_pid
    wait_until(lambda: stack.health()[1].get("status") == "ok", timeout=60, what="all healthy again")

    # Ctrl-C: everything stops, nothing is left behind.
    stack.remember_tree()
    assert len(stack.seen) >= 5  # supervisord, gunicorn master + worker, celery, scheduler
    assert stack.ctrl_c() == 0, stack.events()
    leftovers = [pid for pid, _ in stack.seen if _alive((pid, _))]
    assert leftovers == [], [(_cmdline(p), p) for p in leftovers]
    assert processes_with_env(stack.marker) == []
    for program in ("web", "worker", "scheduler"):
        assert f"stopped: {program}" in stack.events()
