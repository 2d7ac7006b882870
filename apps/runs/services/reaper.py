"""Recovering lost work (run by the scheduler loop every tick).

Celery may lose a message with a killed worker, and a killed worker leaves its
step RUNNING. The database knows better: every running step holds a lease its
worker renews. This pass
1. fails (or retries, per the step's retry policy) steps whose lease lapsed;
2. re-queues steps that were queued long ago and never claimed, in runs none of whose
   steps started lately (the threads running a run's steps take its queued ones);
3. re-advances active runs with nothing in flight (a lost start message, a crash
   between two transactions).
Each fix takes the run's row lock, so it is safe with workers and other schedulers
running at the same time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from apps.core.choices import PipelineFormat, RunExecutor, RuntimeState, TaskKind
from apps.runs import dispatch
from apps.runs.models import Run, Task, TaskAttempt
from apps.runs.services import argo_interpreted
from apps.runs.services.execution import advance_locked
from apps.runs.services.local_steps import StepOutcome, finish_attempt

logger = logging.getLogger("canal.reaper")
BATCH = 200
# The passes below are the local engine's (steps with leases); other executors reap their own.
LOCAL_ENGINE = {"run__executor": RunExecutor.LOCAL, "run__spec_format": PipelineFormat.KFP_IR}
STUCK_RUN_GRACE_SECONDS = 10.0
# A queued step of a run whose steps are being taken waits this many re-queue delays
# (CANAL_REDISPATCH_SECONDS) before it is queued again anyway.
WORKED_RUN_PATIENCE = 5


@dataclass
class ReapReport:
    """What one pass did (for logs and tests)."""

    lost_steps: list[str] = field(default_factory=list)
    redispatched: list[str] = field(default_factory=list)
    advanced_runs: list[str] = field(default_factory=list)


def _dispatch_all(ids: list[Any]) -> None:
    for task_id in ids:
        dispatch.task_execute_later(task_id)


def _reap_lost_step(task_id: Any, run_id: Any, now: Any, report: ReapReport) -> None:
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("namespace").get(pk=run_id)
        task = Task.objects.filter(pk=task_id, state=RuntimeState.RUNNING, lease_expires_at__lt=now).first()
        if task is None:  # it finished, or its worker renewed the lease meanwhile
            return
        assert task.lease_expires_at is not None  # the filter's lease_expires_at__lt excludes null
        seen = task.lease_expires_at - timedelta(seconds=settings.CANAL_TASK_LEASE_SECONDS)
        error = (
            f"lost: the worker running attempt {task.attempt} ({task.lease_owner.rsplit(':', 1)[0]}) "
            f"stopped heartbeating at {seen:%Y-%m-%d %H:%M:%S} UTC"
        )
        TaskAttempt.objects.filter(task=task, number=task.attempt, finished_at__isnull=True).update(
            error=error
        )
        ready = finish_attempt(
            run,
            task,
            task.attempt,
            StepOutcome(outputs=None, error=error, canceled=run.state == RuntimeState.CANCELING),
        )
        ready += advance_locked(run)
        _dispatch_all(ready)
    report.lost_steps.append(str(task_id))


def runs_reap(*, now: Any = None) -> ReapReport:
    """One recovery pass."""
    now = now or timezone.now()
    report = ReapReport()

    lost = Task.objects.filter(
        state=RuntimeState.RUNNING, kind=TaskKind.CONTAINER, lease_expires_at__lt=now, **LOCAL_ENGINE
    ).values_list("id", "run_id")[:BATCH]
    for task_id, run_id in list(lost):
        try:
            _reap_lost_step(task_id, run_id, now, report)
        except Exception:
            logger.exception("could not reap step %s", task_id)

    stale_before = now - timedelta(seconds=settings.CANAL_REDISPATCH_SECONDS)
    # A run whose steps are being taken is being worked on: the threads running its
    # steps take its queued steps as they finish (a wide fan-out's backlog has no
    # message per step). It has a step running under a live lease that started within
    # the re-queue delay. Only the other runs' queued steps get messages again (a long
    # step running alone does not hold back a step whose message was lost).
    worked = Task.objects.filter(
        run=OuterRef("run"),
        state=RuntimeState.RUNNING,
        kind=TaskKind.CONTAINER,
        lease_expires_at__gte=now,
        started_at__gte=stale_before,
    )
    stale = (
        Task.objects.filter(
            Q(not_before__isnull=True) | Q(not_before__lte=now),
            state=RuntimeState.PENDING,
            kind=TaskKind.CONTAINER,
            run__state=RuntimeState.RUNNING,
            **LOCAL_ENGINE,
        )
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale_before))
        # ... but not for ever: a step queued WORKED_RUN_PATIENCE times longer is queued
        # again anyway (a chain keeps starting steps while a branch's message was lost).
        .filter(Q(dispatched_at__lt=now - WORKED_RUN_PATIENCE * (now - stale_before)) | ~Exists(worked))
    )
    stale_ids = list(stale.values_list("id", flat=True)[:BATCH])
    if stale_ids:
        with transaction.atomic():
            Task.objects.filter(pk__in=stale_ids, state=RuntimeState.PENDING).update(dispatched_at=now)
            _dispatch_all(stale_ids)
        report.redispatched = [str(i) for i in stale_ids]

    in_flight = Task.objects.filter(
        run=OuterRef("pk"), kind=TaskKind.CONTAINER, state__in=[RuntimeState.PENDING, RuntimeState.RUNNING]
    )
    grace = now - timedelta(seconds=STUCK_RUN_GRACE_SECONDS)
    stuck = (
        Run.objects.filter(
            state__in=[RuntimeState.PENDING, RuntimeState.RUNNING, RuntimeState.CANCELING],
            created_at__lt=grace,
            executor=RunExecutor.LOCAL,
            spec_format=PipelineFormat.KFP_IR,
        )
        .annotate(busy=Exists(in_flight))
        .filter(busy=False)
        .values_list("id", flat=True)[:BATCH]
    )
    for run_id in list(stuck):
        try:
            with transaction.atomic():
                run = Run.objects.select_for_update().select_related("namespace").get(pk=run_id)
                ready = advance_locked(run)
                _dispatch_all(ready)
            report.advanced_runs.append(str(run_id))
        except Exception:
            logger.exception("could not advance run %s", run_id)
    # Runs other executors hold: interpreted Argo runs whose worker died.
    try:
        report.advanced_runs += argo_interpreted.reap(now=now)
    except Exception:
        logger.exception("could not reap interpreted Argo runs")
    if report.lost_steps or report.redispatched:
        logger.info("reaper: %d lost step(s), %d re-queued", len(report.lost_steps), len(report.redispatched))
    return report
