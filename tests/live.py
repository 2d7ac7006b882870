"""Real processes for live tests: Celery workers and schedulers against the test
database, and helpers to wait for runs. No mocks: these are the same commands
`make run` starts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from apps.core.choices import RuntimeState
from apps.runs.models import Run
from tests.paths import PROJECT


def test_database_url() -> str:
    """A DATABASE_URL for the test database this session created."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or "3306"
    password = db.get("PASSWORD") or ""
    return f"mysql://{db['USER']}:{password}@{host}:{port}/{db['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    """The environment for a child process of this test session."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=test_database_url(),
        CANAL_DATA_DIR=str(settings.CANAL_DATA_DIR),
        DJANGO_SETTINGS_MODULE="pipelines_site.settings",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class LiveProcess:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            argv, cwd=PROJECT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.output()[-4000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not print {text!r} in {timeout}s:\n{self.output()[-4000:]}")

    def kill9(self) -> None:
        """SIGKILL the whole process group, as a crashed machine would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def discard(self) -> None:
        """Kill the process group at once and close the log (end of a test)."""
        self.kill9()
        self._log.close()

    def stop(self) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill9()
        self._log.close()


def start_worker(log_dir: Path, *, concurrency: int = 8, **env: str) -> LiveProcess:
    """A real Celery worker (threads pool, as `make run` starts it), ready to consume."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "pipelines_site",
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    worker = LiveProcess("worker", argv, process_env(**env), log_dir)
    worker.wait_for_output("ready.")
    return worker


def start_scheduler(log_dir: Path, *, tick: float = 0.5, **env: str) -> LiveProcess:
    """The scheduler loop `make run` starts (recurring runs + the reaper)."""
    argv = [sys.executable, "manage.py", "canal_scheduler", "--tick", str(tick)]
    scheduler = LiveProcess("scheduler", argv, process_env(**env), log_dir)
    scheduler.wait_for_output("scheduler started")
    return scheduler


def processes_with_env(entry: str) -> list[int]:
    """Processes (not this one) whose environment holds ``entry`` (``NAME=value``): what
    every process a command started inherits, to find them all and stop them."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            with contextlib.suppress(OSError):
                if entry.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    found.append(int(pid))
    return found


def wait_for_run(run_id: Any, timeout: float = 120.0, *, states: frozenset[str] | None = None) -> Run:
    """Poll until the run reaches one of ``states`` (default: any terminal state)."""
    wanted = states or RuntimeState.terminal()
    deadline = time.monotonic() + timeout
    while True:
        run = Run.objects.get(pk=run_id)
        if run.state in wanted:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} is still {run.state} after {timeout}s")
        time.sleep(0.1)


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def live_log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "processes"
    path.mkdir()
    return path


@pytest.fixture
def worker(transactional_db: Any, live_log_dir: Path) -> Iterator[LiveProcess]:
    """A live Celery worker for one test."""
    proc = start_worker(live_log_dir)
    yield proc
    # The test is over: SIGKILL the worker's process group rather than wait ~4 s for a
    # warm shutdown (its steps' sandboxes die with it: --die-with-parent). Workers killed
    # mid-step are what tests/runs/test_worker_killed.py exercises on purpose.
    proc.discard()


@pytest.fixture
def live_stack(live_server: Any, worker: LiveProcess) -> Any:
    """The web app (pytest-django's live server) plus a real worker, on the test database."""
    from types import SimpleNamespace

    return SimpleNamespace(url=live_server.url, worker=worker)
