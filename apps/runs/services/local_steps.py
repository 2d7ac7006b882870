"""The local run executor, part two: executing one container step on this worker.

``task_execute`` claims one step with a conditional UPDATE (a duplicate message is
a no-op), runs it through the step backend (a sandboxed host process) while
renewing a lease, records the outcome, and advances the run. It returns the ids
of the steps that became ready, so the Celery task can run one of them at once in
the same worker (no broker hop between dependent steps) and queue the rest.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.backends import get_backend
from apps.backends.base import ExecutionBackend, StepResult
from apps.backends.local.launcher import (
    LaunchError,
    PreparedStep,
    finish_step,
    prepare_step,
    step_base_variables,
)
from apps.backends.local.sandbox import SandboxConfig
from apps.core.choices import RuntimeState, TaskKind
from apps.core.db import retry_on_conflict
from apps.core.storage import store_config
from apps.engine.executor_io import OutputError
from apps.engine.model import NodeIO, StepLaunch
from apps.engine.retry import retry_delay
from apps.engine.serialize import load
from apps.runs import dispatch
from apps.runs.models import Run, Task, TaskAttempt
from apps.runs.services.lifecycle import state_entry
from apps.runs.services.local_plan import advance_locked, record_artifacts
from apps.runs.services.records import bump_revision, io_to_json
from apps.runs.services.storage import (
    run_work_root,
    step_inputs_check,
    tenant_work_root,
)
from apps.storage import LogStore, StorageError
from apps.storage.log_errors import TAIL_BYTES, error_line_from_tail, failure_message

logger = logging.getLogger("canal.execution")

MAX_STORED_ARGV = 64 * 1024


class LeaseLost(RuntimeError):
    """Another process took this step over (the reaper decided our worker was dead)."""


class StepCanceled(RuntimeError):
    """The run is being terminated."""


# --- per-process plumbing ------------------------------------------------------------

_backend_lock = threading.Lock()
_backend: ExecutionBackend | None = None
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def execution_backend() -> ExecutionBackend:
    """The process-wide step backend (it holds warm interpreters, so it is shared by
    threads). Steps that run on a worker are local whatever CANAL_EXECUTION_BACKEND says:
    that setting picks the default *run* executor, and the argo executor runs no step here."""
    global _backend
    with _backend_lock:
        if _backend is None or getattr(_backend, "_owner_pid", os.getpid()) != os.getpid():
            _backend = get_backend(
                "local",
                env_cache_dir=settings.CANAL_TASK_ENV_DIR,
                heartbeat_interval=settings.CANAL_HEARTBEAT_SECONDS,
                max_zygotes=max(2, settings.CANAL_WORKER_CONCURRENCY),
                sandbox=step_sandbox_config(),
                cgroup_root=settings.CANAL_CGROUP_ROOT or None,
                work_root=Path(settings.CANAL_DATA_DIR) / "work",
            )
        return _backend


def step_sandbox_config() -> SandboxConfig:
    """The step sandbox as configured (CANAL_STEP_*): Canal's own directories are hidden."""
    return SandboxConfig(
        mode=settings.CANAL_STEP_SANDBOX,
        network=settings.CANAL_STEP_NETWORK,
        uid=settings.CANAL_STEP_UID,
        gid=settings.CANAL_STEP_GID,
        extra_read_only=tuple(settings.CANAL_STEP_READ_ONLY_PATHS),
        shared=tuple(settings.CANAL_STEP_SHARED_PATHS),
        hidden=tuple(
            str(p)
            for p in (
                settings.CANAL_DATA_DIR,
                settings.BASE_DIR,
                settings.CANAL_CACHE_DIR,
                settings.CANAL_LOG_DIR,
                sys.prefix,
            )
        ),
    )


def log_store() -> LogStore:
    """Where step logs go."""
    return LogStore(settings.CANAL_LOG_DIR)


# --- executing a step ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    task_id: uuid.UUID
    run_id: uuid.UUID
    attempt: int
    token: str
    launch: StepLaunch
    log_path: Path
    pipeline_name: str
    namespace: str = ""
    refused: str = ""  # why the step may not start (an input outside its namespace's storage)


def _claim(task_id: Any) -> _Claim | list[uuid.UUID] | None:
    """Take a PENDING step: RUNNING, next attempt, lease. None if someone else has it.
    Returns ready ids instead when the run is being canceled (the step is dropped)."""
    now = timezone.now()
    token = f"{WORKER_ID}:{uuid.uuid4().hex[:12]}"
    lease = timedelta(seconds=settings.CANAL_TASK_LEASE_SECONDS)
    with transaction.atomic():
        run_id = Task.objects.filter(pk=task_id).values_list("run_id", flat=True).first()
        if run_id is None:
            return None
        # Lock the run first, as every writer of this run's tasks does: one lock order, no deadlocks.
        run = Run.objects.select_for_update().select_related("namespace").get(pk=run_id)
        claimable = Task.objects.filter(
            pk=task_id, state=RuntimeState.PENDING, kind=TaskKind.CONTAINER
        ).filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        if not claimable.exists():  # someone else has it, or it finished: nothing to stamp
            return None
        claimed = claimable.update(
            state=RuntimeState.RUNNING,
            revision=bump_revision(run),
            attempt=F("attempt") + 1,
            lease_owner=token,
            lease_expires_at=now + lease,
            not_before=None,
        )
        if not claimed:
            return None
        task = Task.objects.get(pk=task_id)
        if run.state not in (RuntimeState.PENDING, RuntimeState.RUNNING):
            # Terminated (or finished) after this step was queued: drop it.
            Task.objects.filter(pk=task.pk).update(
                state=RuntimeState.CANCELED,
                revision=bump_revision(run),
                finished_at=now,
                lease_owner="",
                status_message="canceled before it started (run terminated)",
            )
            return advance_locked(run)
        log_path = log_store().path_for(str(run.pk), str(task.pk), task.attempt)
        TaskAttempt.objects.create(
            task=task, number=task.attempt, state=RuntimeState.RUNNING, worker=token, log_path=str(log_path)
        )
        Task.objects.filter(pk=task.pk).update(
            started_at=task.started_at or now,
            log_path=str(log_path),
            state_history=[*task.state_history, state_entry(RuntimeState.RUNNING, at=now)],
        )
        assert task.launch is not None
        launch = load(StepLaunch, task.launch)
        return _Claim(
            task_id=task.pk,
            run_id=run.pk,
            attempt=task.attempt,
            token=token,
            launch=launch,
            log_path=log_path,
            pipeline_name=run.pipeline_name,
            namespace=run.namespace.name,
            refused=step_inputs_check(run=run, launch=launch),
        )


def _heartbeat(claim: _Claim) -> Any:
    lease = timedelta(seconds=settings.CANAL_TASK_LEASE_SECONDS)

    def beat() -> None:
        renewed = Task.objects.filter(
            pk=claim.task_id, lease_owner=claim.token, state=RuntimeState.RUNNING
        ).update(lease_expires_at=timezone.now() + lease)
        if not renewed:
            raise LeaseLost("this step's lease was taken over; stopping it so it cannot run twice")
        if Run.objects.filter(pk=claim.run_id, state=RuntimeState.CANCELING).exists():
            raise StepCanceled("the run is being terminated")

    return beat


@dataclass(frozen=True)
class StepOutcome:
    """How one attempt ended, as the service records it."""

    outputs: NodeIO | None
    error: str
    exit_code: int | None = None
    canceled: bool = False
    argv: Sequence[str] = ()
    sandbox: str = ""  # why the attempt ran without the step sandbox ("" when it had it)


def _execute(claim: _Claim) -> StepOutcome:
    """Run one attempt through the backend (no transaction held while it runs)."""
    if claim.refused:
        return StepOutcome(outputs=None, error=claim.refused)
    settings_timeout = settings.CANAL_STEP_TIMEOUT_SECONDS or None
    step_dir = run_work_root(claim.run_id, claim.namespace) / f"{claim.task_id}-{claim.attempt}"
    prepared: PreparedStep | None = None
    try:
        log_store().create(claim.log_path)
        prepared = prepare_step(
            claim.launch,
            task_id=str(claim.task_id),
            attempt=claim.attempt,
            step_dir=step_dir,
            tenant=claim.namespace,
            tenant_dir=tenant_work_root(claim.namespace),
            log_path=claim.log_path,
            store_config=store_config(),
            base_env=step_base_variables(),
            default_timeout=settings_timeout,
            pipeline_name=claim.pipeline_name,
        )
    except (LaunchError, StorageError, OutputError, ValueError, OSError) as exc:
        return StepOutcome(outputs=None, error=f"could not prepare the step: {exc}")
    _save_argv(claim, prepared.argv)
    heartbeat = _heartbeat(claim)
    try:
        heartbeat()  # fail fast if the run was terminated while we prepared
    except (LeaseLost, StepCanceled) as exc:
        return StepOutcome(outputs=None, error=str(exc), canceled=True, argv=prepared.argv)
    backend = execution_backend()
    result: StepResult = backend.run(
        prepared.spec, heartbeat=heartbeat, heartbeat_interval=settings.CANAL_HEARTBEAT_SECONDS
    )
    sandbox = "" if result.sandboxed or result.mode in ("", "none") else sandbox_summary(backend)
    if result.canceled or result.timed_out or not result.succeeded:
        reason = result.error or f"the step exited with code {result.exit_code}"
        return StepOutcome(
            outputs=None,
            error=reason if result.canceled else failure_message(reason, _log_error_line(claim.log_path)),
            exit_code=result.exit_code,
            canceled=result.canceled,
            argv=prepared.argv,
            sandbox=sandbox,
        )
    try:
        outputs = finish_step(prepared, claim.launch, result)
    except (OutputError, StorageError, ValueError, OSError) as exc:
        return StepOutcome(
            outputs=None,
            error=f"reading the step's outputs failed: {exc}",
            exit_code=0,
            argv=prepared.argv,
            sandbox=sandbox,
        )
    return StepOutcome(outputs=outputs, error="", exit_code=0, argv=prepared.argv, sandbox=sandbox)


def _log_error_line(log_path: str | os.PathLike[str]) -> str:
    """The line of a failed attempt's log saying why (read once, from its last 256 KiB,
    when the attempt ends, so pages never scan logs); "" when there is none."""
    try:
        chunk = log_store().read(log_path, offset=-TAIL_BYTES, limit=TAIL_BYTES)
    except (StorageError, OSError, ValueError):
        return ""
    return error_line_from_tail(chunk.data, whole=chunk.offset == 0)


def sandbox_summary(backend: ExecutionBackend | None = None) -> str:
    """What the execution backend says of its step sandbox, in one line."""
    backend = backend or execution_backend()
    sandbox = getattr(backend, "sandbox", None)
    return sandbox.status().summary() if sandbox is not None else ""


def sandbox_startup_report() -> tuple[bool, str]:
    """(sandboxed, summary) for a worker starting up; it logs the summary, loudly when steps
    will not be sandboxed."""
    backend = execution_backend()
    sandbox = getattr(backend, "sandbox", None)
    if sandbox is None:
        return True, ""
    summary = sandbox.status().summary()
    limits = getattr(backend, "limits_mechanism", None)
    if limits is not None:
        summary += f"; resource limits: {limits()}"
    if sandbox.active:
        logger.info("step sandbox: %s", summary)
    else:
        logger.warning("!" * 72)
        logger.warning("STEP SANDBOX UNAVAILABLE: %s", summary)
        logger.warning("pipeline steps can read this worker's files and secrets; see README, Security")
        logger.warning("!" * 72)
    return sandbox.active, summary


def _save_argv(claim: _Claim, argv: Sequence[str]) -> None:
    stored = list(argv)
    if sum(len(a) for a in stored) > MAX_STORED_ARGV:
        stored = [a if len(a) <= 2048 else a[:2048] + "…" for a in stored]
    with transaction.atomic():  # one write transaction, not two
        TaskAttempt.objects.filter(task_id=claim.task_id, number=claim.attempt).update(command=stored)
        Task.objects.filter(pk=claim.task_id).update(command=stored)


def task_execute(*, task_id: Any) -> list[uuid.UUID]:
    """Claim, run and record one step; return the steps that became ready."""
    claim = _claim(task_id)
    if claim is None:
        return []
    if isinstance(claim, list):
        return claim
    try:
        outcome = _execute(claim)
    except Exception as exc:  # a bug or an unexpected backend failure must not strand the step
        logger.exception("step %s failed unexpectedly", claim.task_id)
        outcome = StepOutcome(outputs=None, error=f"internal error running the step: {exc}")
    return record_outcome(claim.task_id, claim.token, claim.attempt, outcome)


def record_outcome(task_id: Any, token: str, attempt: int, outcome: StepOutcome) -> list[uuid.UUID]:
    """Record how an attempt ended (success, retry, failure, cancel), then advance the run.

    Two short transactions instead of one long one: recording flags the run as
    needing an advance; advancing clears the flag. When many steps of a big run
    finish at once, they queue on the run's lock, the first to get it plans for all
    of them, and the rest find the flag already cleared and skip the (full-run)
    planning. That keeps a 1,000-way fan-out from planning 1,000 times.
    """

    def record() -> tuple[Any, list[uuid.UUID]] | None:
        with transaction.atomic():
            task = Task.objects.only("run_id").get(pk=task_id)
            run = Run.objects.select_for_update().select_related("namespace").get(pk=task.run_id)
            task = Task.objects.get(pk=task_id)
            attempt_row = TaskAttempt.objects.filter(task_id=task_id, number=attempt)
            if task.state != RuntimeState.RUNNING or task.lease_owner != token:
                # The reaper (or a terminate) already decided this attempt's fate; keep its decision.
                attempt_row.filter(finished_at__isnull=True).update(
                    state=RuntimeState.CANCELED,
                    finished_at=timezone.now(),
                    error=outcome.error or "superseded: the step was taken over",
                )
                return None
            ready = finish_attempt(run, task, attempt, outcome)
            Run.objects.filter(pk=run.pk).update(needs_advance=True)
            return task.run_id, ready

    # Each transaction is retried on its own if the database picks it as a deadlock
    # victim: re-running the first after it committed would find the step finished.
    recorded = retry_on_conflict(record, what=f"recording step {task_id}")
    if recorded is None:
        return []
    run_id, ready = recorded
    return ready + _advance_coalesced(run_id)


_advancing_lock = threading.Lock()
_advancing: dict[Any, threading.Lock] = {}


def _advance_coalesced(run_id: Any) -> list[uuid.UUID]:
    """Advance the run, unless another thread of this worker is already doing it.

    Planning reads the whole run, so when many of a big run's steps finish at once
    it should happen once for all of them, not once each. Whoever holds the run's
    in-process lock keeps planning while steps keep finishing; everyone else just
    leaves their "needs advance" flag for it. The flag is re-checked after the lock
    is released, so a step that finished just as the planner stopped is not lost.
    """
    with _advancing_lock:
        lock = _advancing.setdefault(run_id, threading.Lock())
    ready: list[uuid.UUID] = []
    while lock.acquire(blocking=False):
        try:
            ready += retry_on_conflict(
                lambda: advance_if_needed(run_id=run_id), what=f"advancing run {run_id}"
            )
        finally:
            lock.release()
        if not Run.objects.filter(pk=run_id, needs_advance=True).exists():
            break
    return ready


def advance_if_needed(*, run_id: Any) -> list[uuid.UUID]:
    """Advance the run unless another process already planned since our last change."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("namespace").filter(pk=run_id).first()
        if run is None or not run.needs_advance:
            return []
        return advance_locked(run)


def finish_attempt(run: Run, task: Task, attempt: int, outcome: StepOutcome) -> list[uuid.UUID]:
    """Record how one attempt ended (caller holds the run lock): success with outputs,
    cancel, a retry per the step's policy, or failure. Returns steps ready at once."""
    now = timezone.now()
    history = list(task.state_history)
    attempt_row = TaskAttempt.objects.filter(task_id=task.pk, number=attempt)
    common: dict[str, Any] = {"lease_owner": "", "lease_expires_at": None, "revision": bump_revision(run)}
    ready: list[uuid.UUID] = []
    if outcome.outputs is not None:
        outputs = record_artifacts(run, task.pk, outcome.outputs)
        attempt_row.update(
            state=RuntimeState.SUCCEEDED,
            exit_code=outcome.exit_code,
            finished_at=now,
            sandbox=outcome.sandbox,
        )
        Task.objects.filter(pk=task.pk).update(
            state=RuntimeState.SUCCEEDED,
            outputs=io_to_json(outputs),
            finished_at=now,
            error="",
            state_history=[*history, state_entry(RuntimeState.SUCCEEDED, at=now)],
            **common,
        )
        return ready
    if outcome.canceled and run.state == RuntimeState.CANCELING:
        attempt_row.update(
            state=RuntimeState.CANCELED,
            exit_code=outcome.exit_code,
            error=outcome.error,
            finished_at=now,
            sandbox=outcome.sandbox,
        )
        Task.objects.filter(pk=task.pk).update(
            state=RuntimeState.CANCELED,
            finished_at=now,
            error="terminated",
            state_history=[*history, state_entry(RuntimeState.CANCELED, "terminated", now)],
            **common,
        )
        return ready
    attempt_row.update(
        state=RuntimeState.FAILED,
        exit_code=outcome.exit_code,
        error=outcome.error,
        finished_at=now,
        sandbox=outcome.sandbox,
    )
    launch = load(StepLaunch, task.launch) if task.launch else None
    delay = retry_delay(launch.retry if launch else None, attempt)
    if delay is not None and run.state == RuntimeState.RUNNING:
        message = f"attempt {attempt} failed: {outcome.error}; retrying in {delay:g}s"
        Task.objects.filter(pk=task.pk).update(
            state=RuntimeState.PENDING,
            not_before=now + timedelta(seconds=delay),
            dispatched_at=now,
            status_message=message,
            error=outcome.error,
            state_history=[*history, state_entry(RuntimeState.PENDING, message, now)],
            **common,
        )
        if delay > 0:
            dispatch.task_execute_later(task.pk, countdown=delay)
        else:
            ready.append(task.pk)
        return ready
    Task.objects.filter(pk=task.pk).update(
        state=RuntimeState.FAILED,
        finished_at=now,
        error=outcome.error,
        state_history=[*history, state_entry(RuntimeState.FAILED, outcome.error, now)],
        **common,
    )
    return ready
