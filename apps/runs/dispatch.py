"""Hand work to Celery once the current transaction commits.

Services call these instead of importing the task functions (tasks sit above
services in the layers); the tasks are addressed by name. ``on_commit`` means a
rolled-back request publishes nothing, and a worker never looks for a row that
isn't committed yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import current_app
from django.conf import settings
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


def send_steps(task_ids: Sequence[Any]) -> None:
    """Publish messages for ready steps, immediately (for Celery tasks), at most
    ``CANAL_DISPATCH_MESSAGES`` of them. The others of a wide fan-out stay queued in the
    database, and the threads running the run's steps take them one by one as their own
    steps end (``task_execute(pull=True)``), so a 5,000-wide fan-out costs a few dozen
    messages, not 5,000. The messages sent start that many threads, on whichever
    workers have room; the reaper re-queues a backlog nobody is taking."""
    for task_id in task_ids[: max(0, settings.CANAL_DISPATCH_MESSAGES)]:
        _send(TASK_EXECUTE, [str(task_id)])


def argo_interpret_later(run_id: Any) -> None:
    """Interpret an Argo run on a worker, after commit."""
    transaction.on_commit(lambda: _send(ARGO_INTERPRET, [str(run_id)]))
