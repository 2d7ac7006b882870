"""Hand work to Celery once the current transaction commits.

Services call these instead of importing the task functions (tasks sit above
services in the layers); the tasks are addressed by name. ``on_commit`` means a
rolled-back request publishes nothing, and a worker never looks for a row that
isn't committed yet.
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction

RUN_ADVANCE = "canal.run_advance"
TASK_EXECUTE = "canal.task_execute"
ARGO_INTERPRET = "canal.argo_interpret"


def _send(name: str, args: list[Any], countdown: float | None = None) -> None:
    current_app.send_task(name, args=args, countdown=countdown if countdown and countdown > 0 else None)


def run_advance_later(run_id: Any) -> None:
    """Advance the run in a worker, after commit."""
    transaction.on_commit(lambda: _send(RUN_ADVANCE, [str(run_id)]))


def task_execute_later(task_id: Any, *, countdown: float | None = None) -> None:
    """Execute a step in a worker, after commit (optionally not before ``countdown`` seconds)."""
    transaction.on_commit(lambda: _send(TASK_EXECUTE, [str(task_id)], countdown))


def send_now(name: str, *args: Any) -> None:
    """Publish immediately (for callers outside a transaction, such as Celery tasks)."""
    _send(name, list(args))


def argo_interpret_later(run_id: Any) -> None:
    """Interpret an Argo run on a worker, after commit."""
    transaction.on_commit(lambda: _send(ARGO_INTERPRET, [str(run_id)]))
