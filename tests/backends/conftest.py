"""Shared fixtures: one task-environment cache and one backend per test session."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.backends.local import EnvSpec, LocalBackend, TaskEnvManager
from tests.paths import KFP_VALID, missing

CORPUS = KFP_VALID


def corpus_executor(relative: str, executor: str | None = None) -> dict[str, Any]:
    """The container spec of one executor of a corpus IR file (skips when the corpus is absent)."""
    path = CORPUS / relative
    if not path.is_file():
        pytest.skip(missing(path))
    spec = next(yaml.safe_load_all(path.read_text()))
    executors = spec["deploymentSpec"]["executors"]
    name = executor or next(iter(executors))
    container: dict[str, Any] = executors[name]["container"]
    return container


def render_args(args: list[str], executor_input: dict[str, Any]) -> list[str]:
    """Substitute ``{{$}}`` the way the engine will (the only placeholder these tests need)."""
    return [json.dumps(executor_input) if a == "{{$}}" else a for a in args]


def lightweight_argv(source: str, function: str, executor_input: dict[str, Any]) -> list[str]:
    """A kfp-generated lightweight command (from the corpus) around our own component source."""
    container = corpus_executor("critical/add_numbers.yaml")
    command = list(container["command"])
    return [
        *command[:6],
        source,
        "--executor_input",
        json.dumps(executor_input),
        "--function_to_execute",
        function,
    ]


def live_group_members(pgid: int) -> list[int]:
    """Pids of non-zombie processes in process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            members.append(int(entry))
    return members


def process_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in ("Z", "X")


def read_text(path: Path) -> str:
    """The file's text, or '' while it does not exist yet."""
    return path.read_text() if path.exists() else ""


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail (not hang) after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Task environments for the whole session (built once, shared by the tests)."""
    return tmp_path_factory.mktemp("canal-envs")


@pytest.fixture(scope="session")
def envs(env_cache: Path) -> TaskEnvManager:
    """The session's task environment manager, with the base environment built up front.

    Building it first keeps the one-time "building task environment" lines
    out of the logs that tests compare.
    """
    manager = TaskEnvManager(env_cache)
    manager.ensure(EnvSpec())
    return manager


@pytest.fixture(scope="session")
def backend(envs: TaskEnvManager) -> Iterator[LocalBackend]:
    """A zygote-enabled local backend with a short termination grace."""
    backend = LocalBackend(envs=envs, terminate_grace=1.0)
    yield backend
    backend.close()
