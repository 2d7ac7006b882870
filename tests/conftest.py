"""Shared fixtures."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from django.test import Client

from apps.core.models import Membership
from tests.factories import UserFactory
from tests.live import live_log_dir, live_stack, worker  # noqa: F401 (fixtures)
from tests.paths import corpus_problem, in_ci


def pytest_sessionstart(session: pytest.Session) -> None:
    """A CI run without the shared corpus fails here, naming what is missing, instead of
    turning every corpus test into a skip (elsewhere those tests skip, naming the path)."""
    problem = corpus_problem()
    if problem and in_ci():
        pytest.exit(f"CI run without the corpus: {problem}", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.hookimpl(trylast=True)  # after pytest-django's own ordering, which xdist overrides anyway
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with a test marked ``slow`` run first, each file's tests kept together and
    every other order kept. With ``--dist loadfile --no-loadscope-reorder`` (``make
    test``, CI), pytest-xdist hands files to its workers in this order, so the
    minutes-long single-test files (the fuzzers, the corpora) start early and the short
    files fill in behind them. xdist's default reorder (most tests first) started those
    files last, and one worker ran them alone for minutes at the end of each pass."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say at the top of a run when the corpus tests will skip, and why."""
    problem = corpus_problem()
    return f"corpus: {problem}; the tests that need it skip" if problem else None


@pytest.fixture
def user(db):  # type: ignore[no-untyped-def]
    """alice, the owner of 'default' (she may do everything there, deleting included).
    Role-specific tests make their own viewers and editors."""
    return UserFactory(username="alice", namespace__role=Membership.Role.OWNER)


@pytest.fixture
def staff_user(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="operator", is_staff=True, is_superuser=True)


@pytest.fixture
def logged_in(client: Client, user):  # type: ignore[no-untyped-def]
    client.force_login(user)
    return client


@pytest.fixture
def csrf_client(user) -> Client:  # type: ignore[no-untyped-def]
    """A logged-in client that enforces CSRF checks, as a browser would see them."""
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    return c


@pytest.fixture
def step_shared() -> Path:
    """A fresh directory that running steps can read and write (inside the session's
    CANAL_STEP_SHARED_PATHS), for tests that coordinate with a step through files."""
    root = Path(os.environ["CANAL_STEP_SHARED_PATHS"].split(",")[0])
    path = root / uuid.uuid4().hex
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    return path
