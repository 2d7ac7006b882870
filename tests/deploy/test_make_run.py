"""`make run` from a fresh clone, first on the embedded SQLite, then switched to MariaDB
and Redis by DATABASE_URL and CELERY_BROKER_URL alone, as the README says (issue: the
second `make run` failed with "Error loading MySQLdb module", because the first one had
left an up-to-date install stamp and the MySQL driver was never installed).

The project's committed HEAD is cloned into a temporary directory and set up there from
the hash-locked requirements (pip's cache makes that a matter of seconds per package, the
venv's creation being the cost). Nothing of this session's environment leaks into it:
no CANAL_*/DATABASE_URL/CELERY_* variable, no MAKEFLAGS, no virtualenv on PATH.

MariaDB and Redis: the ones on 127.0.0.1 (root without a password, as CI and every machine
of this project have them; .ci/run starts both before its first pass). The test creates a
database of its own (never `test` or `test_test`, which the suite uses) and drops it, and
uses Redis database 7 with a queue of its own, whose keys it deletes afterwards.

CI runs the suite twice; this test runs in the first pass only (the second ignores
tests/deploy). It would be correct in either, since it sets DATABASE_URL and
CELERY_BROKER_URL for the clone itself instead of reading this session's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from packaging.markers import Marker

from tests.bytecode import without_bytecode
from tests.deploy.test_locks import read_lock
from tests.live import processes_with_env, wait_until
from tests.paths import PROJECT

pytestmark = [pytest.mark.slow, pytest.mark.live]

MARIADB = ["mariadb", "--host=127.0.0.1", "--port=3306", "--user=root", "--batch", "--skip-column-names"]
REDIS_DB = 7
# Heartbeats every half second, so /healthz can say "ok" soon after the processes start.
FAST = {
    "CANAL_PROCESS_HEARTBEAT_SECONDS": "0.5",
    "CANAL_PROCESS_STALE_SECONDS": "5",
    "CANAL_SCHEDULER_TICK_SECONDS": "0.5",
    "CANAL_WEB_WORKERS": "1",
    "CANAL_WORKER_CONCURRENCY": "1",
}


def _services_or_skip() -> None:
    """MariaDB and Redis must answer; in CI (which starts them) their absence fails."""
    problems = []
    if shutil.which("mariadb") is None:
        problems.append("the mariadb client is not installed")
    elif subprocess.run([*MARIADB, "-e", "SELECT 1"], capture_output=True, check=False).returncode:
        problems.append("MariaDB does not answer on 127.0.0.1:3306 (root, no password)")
    try:
        redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_timeout=5).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis does not answer on 127.0.0.1:6379: {exc}")
    if problems:
        message = "; ".join(problems) + " (.ci/run starts both)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This machine's environment without anything of this test session or an outer make."""
    dropped = ("CANAL_", "DATABASE_", "CELERY_", "DJANGO_", "PYTHON", "VIRTUAL_ENV", "MAKE", "MFLAGS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped) and k not in ("HOST", "PORT")}
    venvs = (str(PROJECT / ".venv"), os.environ.get("VIRTUAL_ENV") or str(PROJECT / ".venv"))
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(venvs))
    env.update(FAST, CANAL_DATA_DIR=str(data_dir), CANAL_ADMIN_PASSWORD="make-run-test-password", **extra)
    return env


def _make(clone: Path, target: str, env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run(
            ["make", target], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    assert done.returncode == 0, f"make {target} failed ({done.returncode}):\n{log.read_text()[-6000:]}"


def _venv_python(clone: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False
    )


def _installed(clone: Path) -> dict[str, str]:
    freeze = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    from packaging.utils import canonicalize_name

    pins = (line.split("==", 1) for line in freeze.splitlines() if "==" in line)
    return {canonicalize_name(name): version for name, version in pins}


def _locked_for_this_machine(*locks: str) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for lock in locks:
        for (name, marker), entry in read_lock(lock).items():
            if not marker or Marker(marker).evaluate():
                wanted[name] = entry.version
    return wanted


def _mariadb(sql: str) -> list[str]:
    done = subprocess.run([*MARIADB, "-e", sql], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{sql}: {done.stderr}"
    return done.stdout.splitlines()


def _health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        return {"http": exc.code}
    except OSError:
        return {}


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.strip()
    path = tmp_path / "canal"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(PROJECT), str(path)], check=True)
    subprocess.run(["git", "checkout", "--quiet", "--detach", head], cwd=path, check=True)
    return path


@pytest.fixture
def mariadb_and_redis() -> Iterator[tuple[str, str]]:
    """A database and a Redis queue of this test's own; both gone afterwards."""
    _services_or_skip()
    name = f"canal_make_run_{uuid.uuid4().hex[:10]}"
    queue = f"canal-make-run-{uuid.uuid4().hex[:10]}"
    _mariadb(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    try:
        yield name, queue
    finally:
        _mariadb(f"DROP DATABASE IF EXISTS {name}")
        client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        for key in list(client.scan_iter(match=f"*{queue}*")):
            client.delete(key)


def test_make_run_on_sqlite_then_switched_to_mariadb_and_redis(
    clone: Path, tmp_path: Path, mariadb_and_redis: tuple[str, str]
) -> None:
    database, queue = mariadb_and_redis
    data_dir = tmp_path / "data"
    log = tmp_path / "make.log"

    # 1. SQLite, the default: the runtime lock, exactly; no MySQL driver; migrated.
    _make(clone, "setup", _clean_env(data_dir), log)
    assert (clone / ".venv" / ".runtime").exists()
    assert not (clone / ".venv" / ".mysql").exists()
    assert _installed(clone) == _locked_for_this_machine("requirements.lock")
    assert "MySQLdb" in _venv_python(clone, "import MySQLdb").stderr  # not installed (yet)
    # Installed with its bytecode: no process compiles Django again (tests/bytecode.py).
    (site,) = (clone / ".venv").glob("lib/python*/site-packages")
    django_sources = sorted((site / "django").rglob("*.py"))
    assert len(django_sources) > 500 and not without_bytecode(django_sources)
    with contextlib.closing(sqlite3.connect(data_dir / "canal.sqlite3")) as db:
        sqlite_migrations = set(db.execute("SELECT app, name FROM django_migrations"))
    assert ("core", "0001_initial") in sqlite_migrations

    # 2. The same checkout, its stamps up to date, switched to MariaDB and Redis by the
    #    environment alone: `make run` installs the driver, migrates MariaDB and serves.
    port = _free_port()
    env = _clean_env(
        data_dir,
        DATABASE_URL=f"mysql://root@127.0.0.1:3306/{database}",
        CELERY_BROKER_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
        CANAL_QUEUE=queue,
        HOST="127.0.0.1",
        PORT=str(port),
    )
    with log.open("ab") as out:
        run = subprocess.Popen(
            ["make", "run"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def healthy() -> dict[str, Any] | None:
            if run.poll() is not None:
                pytest.fail(f"make run exited ({run.returncode}):\n{log.read_text()[-6000:]}")
            body = _health(port)
            return body if body.get("status") == "ok" else None

        body = wait_until(healthy, timeout=600, what="/healthz to report ok")
        # While they run: the processes' heartbeats (what /healthz just reported) are rows
        # in MariaDB, and the worker consumes this test's queue from Redis database 7.
        kinds = _mariadb(f"SELECT DISTINCT kind FROM {database}.core_processheartbeat")  # noqa: S608
        # The worker's heartbeat (a worker bootstep) can be recorded before its consumer
        # has declared the queue: on a loaded machine that took longer than /healthz did.
        broker = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        try:
            bindings = wait_until(
                lambda: broker.keys(f"_kombu.binding.{queue}*"), timeout=120, what="the queue's binding"
            )
        except TimeoutError:
            bindings = []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGINT)  # Ctrl-C
        try:
            run.wait(timeout=90)
        finally:
            for pid in processes_with_env(f"CANAL_DATA_DIR={data_dir}"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if run.poll() is None:
                run.kill()
                run.wait()

    assert {body[kind]["status"] for kind in ("web", "worker", "scheduler")} == {"ok"}, body
    assert (clone / ".venv" / ".mysql").exists()
    assert _venv_python(clone, "import MySQLdb").returncode == 0
    assert _installed(clone) == _locked_for_this_machine("requirements.lock", "requirements-mysql.lock")
    # Every migration that ran on SQLite ran on MariaDB.
    rows = _mariadb(f"SELECT app, name FROM {database}.django_migrations")  # noqa: S608 (our own name)
    assert {tuple(row.split("\t")) for row in rows} == sqlite_migrations
    assert sorted(kinds) == ["scheduler", "worker"]
    assert bindings, "no kombu binding for the queue in Redis: the worker did not use CELERY_BROKER_URL"
