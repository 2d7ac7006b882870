"""Celery tasks: thin. Each takes an id, calls one service, and keeps the worker busy
with the next ready step of the same run instead of paying a broker round trip."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from celery import shared_task

from apps.runs import dispatch
from apps.runs.services import run_advance, task_execute

logger = logging.getLogger("canal.tasks")


def _drive(ready: Iterable[Any]) -> None:
    """Run the first ready step here, queue the others; repeat with what that step unblocks."""
    queue = list(ready)
    while queue:
        head, rest = queue[0], queue[1:]
        for task_id in rest:
            dispatch.send_now(dispatch.TASK_EXECUTE, str(task_id))
        queue = task_execute(task_id=head)


@shared_task(name=dispatch.RUN_ADVANCE, acks_late=True, ignore_result=True)
def run_advance_task(run_id: str) -> None:
    """Advance a run (start, terminate, retry, recovery) and run what is ready."""
    _drive(run_advance(run_id=run_id))


@shared_task(name=dispatch.TASK_EXECUTE, acks_late=True, ignore_result=True)
def task_execute_task(task_id: str) -> None:
    """Execute one step (idempotent: a step already claimed is skipped)."""
    _drive([task_id])
