"""Celery tasks: thin. Each takes an id, calls one service, and keeps the worker busy
with the next ready step of the same run instead of paying a broker round trip."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, ParamSpec

from celery import shared_task
from celery.signals import worker_shutting_down
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from apps.runs import dispatch
from apps.runs.services import argo_interpret, run_advance, run_fail_unexpected, task_execute

logger = logging.getLogger("canal.tasks")

P = ParamSpec("P")


def _task(name: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """Celery's ``shared_task`` with the options every task here has. Celery ships no
    types: to mypy a task is the function it wraps (called directly in tests; queued by
    name through ``dispatch``)."""
    decorate: Callable[[Callable[P, None]], Callable[P, None]] = shared_task(
        name=name, acks_late=True, ignore_result=True
    )
    return decorate


def _guarded(work: Callable[[], list[Any]], *, run_id: Any = None, task_id: Any = None) -> list[Any]:
    """Run ``work``; if it raises something unexpected, fail the run with the reason
    instead of leaving it PENDING or RUNNING for the reaper to trip over on every pass.
    Trouble with the database or the broker (lock conflicts, a lost connection: not the
    run's fault) propagates as before: the services retry conflicts, and the reaper
    picks the run up again later."""
    try:
        return work()
    except (OperationalError, InterfaceError, BrokerError, ConnectionError):
        raise
    except Exception as exc:
        logger.exception("unexpected error working on run %s / step %s", run_id, task_id)
        run_fail_unexpected(exc=exc, run_id=run_id, task_id=task_id)
        return []


# Set when the worker starts a warm shutdown: a thread finishes the step it runs (and a
# step handed over to it), but takes no more of a fan-out's queued steps, so the worker
# stops within its steps' time. The queued steps wait for another worker (the reaper
# queues them again when none of the run's steps is running).
_stopping = threading.Event()


def _stop_pulling(**_: Any) -> None:
    _stopping.set()


worker_shutting_down.connect(_stop_pulling)


def _drive(ready: Iterable[Any]) -> None:
    """Run the first ready step here, queue the others (a bounded number of messages:
    ``dispatch.send_steps``); repeat with what that step unblocks or, when it unblocks
    nothing, with the next queued step of its run."""
    queue = list(ready)
    while queue:
        head, rest = queue[0], queue[1:]
        dispatch.send_steps(rest)
        pull = not _stopping.is_set()
        queue = _guarded(partial(task_execute, task_id=head, pull=pull), task_id=head)


@_task(dispatch.RUN_ADVANCE)
def run_advance_task(run_id: str) -> None:
    """Advance a run (start, terminate, retry, recovery) and run what is ready."""
    _drive(_guarded(lambda: run_advance(run_id=run_id), run_id=run_id))


@_task(dispatch.TASK_EXECUTE)
def task_execute_task(task_id: str) -> None:
    """Execute one step (idempotent: a step already claimed is skipped)."""
    _drive([task_id])


@_task(dispatch.ARGO_INTERPRET)
def argo_interpret_task(run_id: str) -> None:
    """Interpret an Argo Workflow run on this worker (idempotent: a run held by another
    live worker, or finished, is left alone)."""

    def interpret() -> list[Any]:
        argo_interpret(run_id=run_id)
        return []  # it queues no steps

    _guarded(interpret, run_id=run_id)
