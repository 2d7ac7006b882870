"""Acceptance: a pipeline step cannot escape the step sandbox.

A real pipeline, run by a real worker, tries from a lightweight step and from a
container step to read the secret key and the database, read another run's
artifact and log, read the environment of Canal's processes, reach the database
and the broker over the network, write outside its own directory, and kill
another step. The test asserts on the step's own report. The same pipelines run
again with ``CANAL_STEP_SANDBOX=off``, where the attacks must get through: this
test fails when the sandbox does nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from apps.artifacts.models import Artifact
from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.models import Task, TaskAttempt
from apps.runs.services import run_create
from tests.factories import UserFactory
from tests.hardening import escape_pipelines as ep
from tests.live import LiveProcess, start_worker, wait_for_run
from tests.runs.kfp_pipelines import compile_to_ir

pytestmark = [pytest.mark.live, pytest.mark.slow]

ATTACKERS = {
    "lightweight": (ep.escape_lightweight, "lightweight-attacker", "Output"),
    "container": (ep.escape_container, "container-attacker", "report"),
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _other_namespace_run() -> tuple[Path, Path]:
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR, name="team-b"),
        actor=OPERATOR,
        display_name="victim",
        pipeline_spec=compile_to_ir(ep.victim_run),
    )
    done = wait_for_run(run.pk, timeout=300)
    assert done.state == RuntimeState.SUCCEEDED, done.error
    artifact = Path(Artifact.objects.get(run=run, name="data").uri)
    log = Path(Task.objects.get(run=run, name="write-artifact").log_path)
    assert artifact.read_text() == "another namespace's data"
    assert "the other run's log line" in log.read_text()
    return artifact, log


def _targets(marker: str, artifact: Path, log: Path, victim_seconds: str, token: str) -> dict[str, Any]:
    data = Path(settings.CANAL_DATA_DIR)
    root = Path(settings.CANAL_PIPELINE_ROOT)
    read = {"secret key": str(data / "secret_key"), "other artifact": str(artifact), "other log": str(log)}
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        read["database"] = str(db["NAME"])
    return {
        "read": read,
        "list": {"data dir": str(data), "artifact root": str(root), "broker": str(data / "broker")},
        # MariaDB and Redis listen on the host's loopback (CI starts both).
        "connect": {"database server": ["127.0.0.1", 3306], "broker server": ["127.0.0.1", 6379]},
        "environ_marker": marker,
        "write": {"data dir": str(data / f"escape-{token}"), "artifact root": str(root / f"escape-{token}")},
        "victim_seconds": victim_seconds,
    }


def _attack(kind: str, targets: dict[str, Any], victim_seconds: str) -> tuple[dict[str, str], Any]:
    pipeline, attacker, output = ATTACKERS[kind]
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR, name="team-a"),
        actor=OPERATOR,
        display_name=f"escape-{kind}",
        pipeline_spec=compile_to_ir(pipeline),
        parameters={"targets": json.dumps(targets), "victim_seconds": victim_seconds},
    )
    done = wait_for_run(run.pk, timeout=300)
    task = Task.objects.get(run=run, name=attacker)
    assert task.state == RuntimeState.SUCCEEDED, (task.error, done.error)
    report = json.loads(task.outputs["parameters"][output])
    return report, Task.objects.get(run=run, name="victim")


def _escapes(report: dict[str, str], targets: dict[str, Any], victim: Any) -> dict[str, str]:
    """The attacks that really got through, judged against the host (not the step's word:
    a step may "write" a path that only exists in its own private /tmp)."""
    real: dict[str, str] = {}
    for name, path in targets["read"].items():
        result = report[f"read {name}"]
        if not result.startswith("ok: "):
            continue
        if name == "database":
            # Never open the live SQLite file from this process: closing any descriptor of
            # it drops SQLite's POSIX locks, and the next connection here fails. The step
            # read it: that is the escape.
            real[f"read {name}"] = result
        elif Path(path).is_file() and result == f"ok: {_sha(Path(path))}":
            real[f"read {name}"] = result
    for name, path in targets["list"].items():
        result = report[f"list {name}"]
        # A private view can show a mount point ("work") or what the step made itself.
        shown = set(result[4:].split(",")) - {"work", ""} if result.startswith("ok: ") else set()
        shown = {entry for entry in shown if not entry.startswith("escape-")}
        if shown and shown <= set(os.listdir(path)):
            real[f"list {name}"] = result
    for name in targets["connect"]:
        if report[f"connect {name}"].startswith("ok"):
            real[f"connect {name}"] = report[f"connect {name}"]
    if report["read canal environ"].startswith("ok"):
        real["read canal environ"] = report["read canal environ"]
    for name, path in targets["write"].items():
        if Path(path).exists():
            real[f"write {name}"] = Path(path).read_text()
    if report["kill other step"].startswith("ok") or victim.state != RuntimeState.SUCCEEDED:
        real["kill other step"] = f"{report['kill other step']}; victim {victim.state}"
    return real


@pytest.fixture
def escape_worker(
    transactional_db: Any, live_log_dir: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Any:
    marker = f"CANAL_ESCAPE_MARKER={secrets.token_hex(8)}"
    name, value = marker.split("=")
    monkeypatch.setenv(name, value)  # in this process's and the worker's environments
    worker: LiveProcess = start_worker(live_log_dir, CANAL_STEP_SANDBOX=request.param)
    try:
        yield request.param, marker, worker
    finally:
        worker.stop()


@pytest.mark.parametrize("escape_worker", ["auto"], indirect=True)
@pytest.mark.parametrize("kind", sorted(ATTACKERS))
def test_a_sandboxed_step_cannot_escape(escape_worker: Any, kind: str) -> None:
    _mode, marker, worker = escape_worker
    artifact, log = _other_namespace_run()
    token = secrets.token_hex(6)
    victim_seconds = f"25.{random.randint(100_000, 999_999)}"  # recognisable by its command line
    targets = _targets(marker, artifact, log, victim_seconds, token)
    report, victim = _attack(kind, targets, victim_seconds)

    expected = {f"read {n}" for n in targets["read"]} | {f"list {n}" for n in targets["list"]}
    expected |= {f"connect {n}" for n in targets["connect"]} | {f"write {n}" for n in targets["write"]}
    expected |= {"read canal environ", "kill other step"}
    assert set(report) == expected  # every attack was tried
    assert _escapes(report, targets, victim) == {}, json.dumps(report, indent=2)
    # The worker said how it sandboxes, and no attempt is marked unsandboxed.
    assert "step sandbox: steps are sandboxed (bubblewrap" in worker.output()
    assert not TaskAttempt.objects.filter(task__run=victim.run).exclude(sandbox="").exists()


@pytest.mark.parametrize("escape_worker", ["off"], indirect=True)
@pytest.mark.parametrize("kind", sorted(ATTACKERS))
def test_without_the_sandbox_the_same_attacks_get_through(escape_worker: Any, kind: str) -> None:
    """The control: with CANAL_STEP_SANDBOX=off the probe does reach what it tries to."""
    _mode, marker, worker = escape_worker
    artifact, log = _other_namespace_run()
    token = secrets.token_hex(6)
    victim_seconds = f"25.{random.randint(100_000, 999_999)}"  # recognisable by its command line
    targets = _targets(marker, artifact, log, victim_seconds, token)
    report, victim = _attack(kind, targets, victim_seconds)

    escaped = _escapes(report, targets, victim)
    must = {"read secret key", "read other artifact", "read other log", "list data dir", "read canal environ"}
    must |= {"connect database server", "write data dir", "write artifact root", "kill other step"}
    assert must <= set(escaped), json.dumps(report, indent=2)
    for path in targets["write"].values():
        Path(path).unlink()
    # Never silent: the worker warned at start-up, each attempt records it, the run page says it.
    assert "STEP SANDBOX UNAVAILABLE: steps are NOT sandboxed" in worker.output()
    attempt = TaskAttempt.objects.filter(task__run=victim.run).first()
    assert attempt is not None and "CANAL_STEP_SANDBOX=off" in attempt.sandbox
    client = Client()
    client.force_login(UserFactory(username="looker", is_staff=True, is_superuser=True))
    page = client.get(f"/runs/{victim.run_id}/").content.decode()
    assert "Not sandboxed:" in page and "CANAL_STEP_SANDBOX=off" in page
