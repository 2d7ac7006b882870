"""Advancing runs: the entry points every caller uses, whichever executor runs the run.

The database is the source of truth; Celery only carries ids. ``run_advance``
locks the Run row (``SELECT … FOR UPDATE``: a finishing step, a worker and the
scheduler may all advance the same run, and only one may at a time) and hands it
to the run's executor (``services.executors``). Container steps of local KFP IR
runs come back as ids, for ``local_steps.task_execute``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.core.choices import RuntimeState
from apps.core.db import retry_on_conflict
from apps.core.text import without_surrogates
from apps.runs.models import Run, Task, TaskAttempt
from apps.runs.services.executors import run_executor_for
from apps.runs.services.lifecycle import state_entry
from apps.runs.services.local_plan import fail_run_locked
from apps.runs.services.records import bump_revision

logger = logging.getLogger("canal.execution")


def run_advance(*, run_id: Any) -> list[uuid.UUID]:
    """Start a run or move it on through its executor; return local steps to execute."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("namespace").filter(pk=run_id).first()
        if run is None:
            return []
        return advance_locked(run)


def advance_locked(run: Run) -> list[uuid.UUID]:
    """``run_advance`` for a run already locked by the caller's transaction."""
    if run.state in RuntimeState.terminal():
        if run.needs_advance:
            Run.objects.filter(pk=run.pk).update(needs_advance=False)
        return []
    return run_executor_for(run).advance(run)


def run_fail_unexpected(*, exc: BaseException, run_id: Any = None, task_id: Any = None) -> bool:
    """Fail the active run a worker was working on when something unexpected raised (the
    run ``run_id``, or the run of step ``task_id``), so it never waits for ever in PENDING
    or RUNNING. That step, if it is still RUNNING, fails with the same reason. Returns
    True if a run was failed; a run that already finished is left alone."""
    error = without_surrogates(f"internal error while working on this run: {type(exc).__name__}: {exc}")

    def fail() -> bool:
        with transaction.atomic():
            found = run_id
            if found is None:
                found = Task.objects.filter(pk=task_id).values_list("run_id", flat=True).first()
            run = Run.objects.select_for_update().select_related("namespace").filter(pk=found).first()
            if run is None or run.state in RuntimeState.terminal():
                return False
            now = timezone.now()
            if task_id is not None:
                step = Task.objects.filter(pk=task_id, run=run, state=RuntimeState.RUNNING).first()
                if step is not None:
                    TaskAttempt.objects.filter(task=step, finished_at__isnull=True).update(
                        state=RuntimeState.FAILED, error=error, finished_at=now
                    )
                    Task.objects.filter(pk=step.pk).update(
                        state=RuntimeState.FAILED,
                        error=error,
                        finished_at=now,
                        lease_owner="",
                        lease_expires_at=None,
                        revision=bump_revision(run),
                        state_history=[*step.state_history, state_entry(RuntimeState.FAILED, error, now)],
                    )
            fail_run_locked(run, exc, error=error)
            run.save(
                update_fields=["state", "state_history", "finished_at", "error", "needs_advance", "revision"]
            )
            return True

    return retry_on_conflict(fail, what=f"failing run {run_id or 'of step ' + str(task_id)}")
