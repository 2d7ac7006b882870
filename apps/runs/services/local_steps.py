"""The local run executor, part two: executing one container step on this worker.

``task_execute`` claims one step with a conditional UPDATE (a duplicate message is
a no-op), runs it through the step backend (a sandboxed host process) while
renewing a lease, records the outcome and advances the run, in one transaction
shared with the worker's other steps that finished at the same moment (a group
commit, ``_Committer``). It returns the ids of the steps that became ready, so the
Celery task can run one of them at once in the same worker (no broker hop between
dependent steps) and queue the rest.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, OperationalError, transaction
from django.db.models import Model
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
from apps.core.db import RowWrites, is_transient, retry_on_conflict, select_where, update_where
from apps.core.models import Namespace
from apps.core.storage import store_config
from apps.engine.executor_io import OutputError
from apps.engine.model import NodeIO, StepLaunch
from apps.engine.retry import retry_delay
from apps.engine.serialize import load
from apps.runs import dispatch
from apps.runs.models import Run, Task, TaskAttempt
from apps.runs.services.lifecycle import state_entry
from apps.runs.services.local_plan import PlanFailed, advance_locked, record_artifacts
from apps.runs.services.records import bump_revision, io_to_json, next_revision
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
    Returns ready ids instead when the run is being canceled (the step is dropped).
    A step handed to this thread by its last group commit was claimed there already;
    other claims go through the worker's group commit too (``_Committer``)."""
    try:
        task_id = uuid.UUID(str(task_id))  # a queue message carries it as text
    except ValueError:
        return None
    preclaimed: _Claim | None = getattr(_preclaimed, "claims", {}).pop(task_id, None)
    if preclaimed is not None:
        return preclaimed
    work = _Work(task_id=task_id)
    _committer.submit(work)
    return work.claimed


def _claim_locked(
    run: Run,
    task: Task | None,
    now: Any,
    revision: Callable[[], int] | None = None,
    attempts: list[TaskAttempt] | None = None,
    writes: RowWrites | None = None,
) -> _Claim | list[uuid.UUID] | None:
    """``_claim`` inside a transaction holding the run's lock (``task`` read under it).
    ``revision`` gives the revision to stamp (default: a new one); the new attempt's row
    is appended to ``attempts`` for the caller to insert, if given (else inserted); the
    claim's UPDATE joins ``writes``, if given (else it is sent now)."""
    stamp = revision or (lambda: bump_revision(run))
    if (
        task is None
        # Claimed already in this batch (two messages for one step reached two threads).
        or (writes is not None and writes.pending(Task, {"pk": task.pk}))
        or task.state != RuntimeState.PENDING
        or task.kind != TaskKind.CONTAINER
        or (task.not_before is not None and task.not_before > now)
    ):
        return None  # someone else has it, or it finished: nothing to stamp
    token = f"{WORKER_ID}:{uuid.uuid4().hex[:12]}"
    attempt = task.attempt + 1
    if run.state not in (RuntimeState.PENDING, RuntimeState.RUNNING):
        # Terminated (or finished) after this step was queued: drop it.
        if writes is not None:
            writes.flush()  # the advance below reads the run's rows
        Task.objects.filter(pk=task.pk, state=RuntimeState.PENDING).update(
            state=RuntimeState.CANCELED,
            revision=stamp(),
            attempt=attempt,
            finished_at=now,
            lease_owner="",
            status_message="canceled before it started (run terminated)",
        )
        return advance_locked(run)
    log_path = log_store().path_for(str(run.pk), str(task.pk), attempt)
    claim = {
        "state": RuntimeState.RUNNING,
        "revision": stamp(),
        "attempt": attempt,
        "lease_owner": token,
        "lease_expires_at": now + timedelta(seconds=settings.CANAL_TASK_LEASE_SECONDS),
        "not_before": None,
        "started_at": task.started_at or now,
        "log_path": str(log_path),
        "state_history": [*task.state_history, state_entry(RuntimeState.RUNNING, at=now)],
    }
    if writes is not None:
        # Under the run's lock, the step read PENDING stays so: the flush fails otherwise.
        writes.update(Task, {"pk": task.pk}, {"state": RuntimeState.PENDING}, **claim)
    elif not update_where(Task, {"pk": task.pk, "state": RuntimeState.PENDING}, **claim):
        return None
    row = TaskAttempt(
        task=task, number=attempt, state=RuntimeState.RUNNING, worker=token, log_path=str(log_path)
    )
    if attempts is None:
        row.save(force_insert=True)
    else:
        attempts.append(row)
    assert task.launch is not None
    launch = load(StepLaunch, task.launch)
    return _Claim(
        task_id=task.pk,
        run_id=run.pk,
        attempt=attempt,
        token=token,
        launch=launch,
        log_path=log_path,
        pipeline_name=run.pipeline_name,
        namespace=run.namespace.name,
        refused=step_inputs_check(run=run, launch=launch),
    )


_preclaimed = threading.local()


class _Leases:
    """The leases of the steps this worker is running, renewed together: one UPDATE per
    worker per renewal, not one per running step.

    Each running step's heartbeat (``check``) renews every lease of the worker when the
    last renewal is older than half a heartbeat interval, then answers for its own step
    from what that renewal found: a lease another process took over (the reaper decided
    this worker was dead) stops the step with ``LeaseLost``, a run being terminated with
    ``StepCanceled``. A step just claimed holds a fresh lease, so it is not renewed
    before the next round.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._renewing = threading.Lock()
        self._held: dict[str, _Claim] = {}
        self._argv: dict[str, _Work] = {}  # command lines of held steps, not stored yet
        self._lost: set[str] = set()
        self._canceling: set[Any] = set()
        self.renewed_at = float("-inf")
        self.succeeded_at = time.monotonic()

    def hold(self, claim: _Claim) -> None:
        with self._lock:
            self._held[claim.token] = claim

    def release(self, claim: _Claim) -> None:
        with self._lock:
            self._held.pop(claim.token, None)
            self._lost.discard(claim.token)

    def take_argv(self, token: str) -> list[str]:
        """The command line of an attempt that ended, if no renewal stored it yet: the
        record of its end stores it."""
        with self._lock:
            work = self._argv.pop(token, None)
        return work.argv if work is not None and work.argv is not None else []

    def note_argv(self, claim: _Claim, argv: list[str]) -> None:
        """Keep a step's command line until its end is recorded (which stores it) or the
        next renewal, whichever comes first: a step that runs for a while shows it within
        half a heartbeat interval, and a short one costs no write of its own."""
        with self._lock:
            self._argv[claim.token] = _Work(
                task_id=claim.task_id, attempt=claim.attempt, run_id=claim.run_id, argv=argv
            )

    def check(self, claim: _Claim) -> None:
        with self._renewing:
            if time.monotonic() - self.renewed_at >= settings.CANAL_HEARTBEAT_SECONDS / 2:
                try:
                    self._renew()
                except OperationalError as exc:
                    # A lock conflict (the renewal met a group commit's rows on MariaDB):
                    # the leases are good for CANAL_TASK_LEASE_SECONDS, so try again at
                    # the next heartbeat rather than stop the steps; only a database
                    # that stays unreachable for a whole lease stops them.
                    since = time.monotonic() - self.succeeded_at
                    if not is_transient(exc) and since >= settings.CANAL_TASK_LEASE_SECONDS:
                        raise
                    logger.info(
                        "renewing the worker's leases failed (%s); retrying at the next heartbeat", exc
                    )
                with self._lock:
                    running = [self._argv.pop(token) for token in list(self._argv) if token in self._held]
                for work in running:
                    _committer.defer(work)
                _committer.flush()
        with self._lock:
            lost, canceling = claim.token in self._lost, claim.run_id in self._canceling
        if lost:
            raise LeaseLost("this step's lease was taken over; stopping it so it cannot run twice")
        if canceling:
            raise StepCanceled("the run is being terminated")

    def _renew(self) -> None:
        with self._lock:
            claims = list(self._held.values())
        tokens = [claim.token for claim in claims]
        lease = timedelta(seconds=settings.CANAL_TASK_LEASE_SECONDS)
        # By primary key: only these rows are locked (MariaDB locks what an UPDATE scans).
        mine = Task.objects.filter(
            pk__in=sorted(claim.task_id for claim in claims),
            lease_owner__in=tokens,
            state=RuntimeState.RUNNING,
        )
        mine.update(lease_expires_at=timezone.now() + lease)
        held = set(mine.values_list("lease_owner", flat=True))
        canceling = set(
            Run.objects.filter(
                pk__in={claim.run_id for claim in claims}, state=RuntimeState.CANCELING
            ).values_list("pk", flat=True)
        )
        with self._lock:
            self._lost |= set(tokens) - held
            self._canceling = canceling
        self.renewed_at = self.succeeded_at = time.monotonic()


_leases = _Leases()


def _heartbeat(claim: _Claim) -> Any:
    def beat() -> None:
        _leases.check(claim)

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
    _leases.hold(claim)
    try:
        try:
            heartbeat()  # fail fast if the run was terminated while we prepared
        except (LeaseLost, StepCanceled) as exc:
            return StepOutcome(outputs=None, error=str(exc), canceled=True, argv=prepared.argv)
        backend = execution_backend()
        result: StepResult = backend.run(
            prepared.spec, heartbeat=heartbeat, heartbeat_interval=settings.CANAL_HEARTBEAT_SECONDS
        )
    finally:
        _leases.release(claim)
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


def _stored_argv(argv: Sequence[str]) -> list[str]:
    stored = list(argv)
    if sum(len(a) for a in stored) > MAX_STORED_ARGV:
        stored = [a if len(a) <= 2048 else a[:2048] + "…" for a in stored]
    return stored


def _save_argv(claim: _Claim, argv: Sequence[str]) -> None:
    # Stored with the attempt's end, or by the first heartbeat renewal while the step
    # runs (within half an interval), not in a write transaction of its own.
    _leases.note_argv(claim, _stored_argv(argv))


def task_execute(*, task_id: Any, pull: bool = False) -> list[uuid.UUID]:
    """Claim, run and record one step; return the steps that became ready.

    With ``pull``, a step whose end makes nothing ready for this thread takes the next
    queued step of its run instead (claimed in the same group commit): a worker thread
    works through a wide fan-out's backlog without a broker message per step."""
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
    return record_outcome(claim.task_id, claim.token, claim.attempt, outcome, run_id=claim.run_id, pull=pull)


def record_outcome(
    task_id: Any, token: str, attempt: int, outcome: StepOutcome, *, run_id: Any = None, pull: bool = False
) -> list[uuid.UUID]:
    """Record how an attempt ended (success, retry, failure, cancel) and advance its run,
    in one transaction shared with the other steps of this worker that finished at the
    same moment (a group commit: see ``_Committer``). Returns the steps for this thread
    to run next: its share of those that became ready or, with ``pull`` when there is
    none, the next queued step of the run."""
    noted = _leases.take_argv(token)
    if noted and not outcome.argv:  # it ended before its outcome knew it (an internal error)
        outcome = replace(outcome, argv=noted)
    finished = _Work(task_id=task_id, token=token, attempt=attempt, outcome=outcome, run_id=run_id, pull=pull)
    _committer.submit(finished)
    if isinstance(finished.claimed, _Claim):
        # The first of the steps handed to this thread was claimed in the same
        # transaction; task_execute finds it here instead of claiming it again.
        if not hasattr(_preclaimed, "claims"):
            _preclaimed.claims = {}
        _preclaimed.claims[finished.claimed.task_id] = finished.claimed
    return finished.ready


@dataclass
class _Work:
    """A step to claim (no ``outcome``), a finished attempt to record, or a command line
    to store (``argv``: deferred, nobody waits for it), for the worker's group commit,
    and what it gave."""

    task_id: Any
    token: str = ""
    attempt: int = 0
    outcome: StepOutcome | None = None
    run_id: Any = None
    argv: list[str] | None = None
    pull: bool = False  # take the run's next queued step if nothing is handed over
    ready: list[uuid.UUID] = field(default_factory=list)
    claimed: _Claim | list[uuid.UUID] | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to take the committer's lead, not with a result

    def reset(self) -> None:
        self.ready, self.claimed, self.error = [], None, None


class _Committer:
    """Group commit of finished attempts, as databases commit their logs.

    Each of a worker's threads that finishes a step hands its attempt here. If no thread
    is recording, it becomes the leader: it records what is waiting in one transaction
    (the run locked once, one advance per run on its kept engine) and wakes the threads
    whose attempts were in it, each with a share of the steps that became ready, to run
    itself without a broker message. Attempts that arrive meanwhile form the next batch,
    so batches grow with the load and no timer is needed. A leader records at most
    ``MAX_LED`` batches, then hands the lead to a waiting thread and goes back to running
    steps. A batch is one transaction: a worker killed during it leaves none of it, and
    the reaper retries those steps as for any dead worker.
    """

    MAX_BATCH = 64
    MAX_LED = 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_Work] = []
        self._leading = False

    def submit(self, work: _Work) -> None:
        """Hand ``work`` in and wait until a group commit has done it (raises what doing
        it raised)."""
        with self._lock:
            self._pending.append(work)
            lead = not self._leading
            self._leading = True
        if not lead:
            work.done.wait()
            if work.lead:
                work.done.clear()
                self._lead()
        else:
            self._lead()
        if work.error is not None:
            raise work.error

    def defer(self, work: _Work) -> None:
        """Hand ``work`` in without waiting: the next group commit does it."""
        with self._lock:
            self._pending.append(work)

    def flush(self) -> None:
        """Do deferred work now, unless a group commit is under way (it will)."""
        with self._lock:
            if self._leading or not self._pending:
                return
            self._leading = True
        self._lead()

    def _lead(self) -> None:
        batch: list[_Work] = []
        try:
            for _ in range(self.MAX_LED):
                with self._lock:
                    batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH :]
                if not batch:
                    break
                _record_batch(batch)
                for item in batch:
                    item.done.set()
                batch = []
        finally:
            for item in batch:  # a BaseException (the worker stopping) left these unrecorded
                item.error = item.error or RuntimeError("the worker stopped while recording this step")
                item.done.set()
            with self._lock:
                # The lead goes to a thread that waits; deferred work waits for it.
                successor = next((item for item in self._pending if item.argv is None), None)
                if successor is not None:
                    successor.lead = True
                    successor.done.set()
                else:
                    self._leading = False


_committer = _Committer()


def _record_batch(batch: list[_Work]) -> None:
    """Do a batch in one transaction. If that fails other than by a lock conflict (which
    is retried), do each piece of work alone, so one bad attempt fails only its own
    thread, with its own exception."""
    try:
        retry_on_conflict(partial(_record_planned, batch), what=f"recording {len(batch)} step(s)")
        return
    except Exception as exc:
        if len(batch) == 1:
            batch[0].reset()
            batch[0].error = exc
            return
        logger.warning("recording %d steps together failed; recording each alone", len(batch), exc_info=True)
    for item in batch:
        try:
            retry_on_conflict(partial(_record_planned, [item]), what=f"recording step {item.task_id}")
        except Exception as exc:
            item.reset()
            item.error = exc


def _record_planned(batch: list[_Work]) -> None:
    """``_record_together`` with no savepoint around each run's plan (two statements a
    batch on MariaDB); if a plan fails, the batch rolls back whole and is done once more
    the old way, each plan in its own savepoint, so that the run fails with the reason
    and the other runs are recorded. A failing plan is rare (a spec the engine cannot
    run, a value no encoder takes); it costs one more transaction, in which the batch's
    other runs rebuild their engines from their rows (what the rolled-back try fed
    them is gone)."""
    try:
        _record_together(batch, savepoints=False)
    except PlanFailed as exc:
        logger.info("%s; recording the batch again, each plan in a savepoint", exc)
        _record_together(batch, savepoints=True)


def _record_together(batch: list[_Work], *, savepoints: bool = True) -> None:
    """Claims, finished attempts, one advance per run, and a claim of the first step
    handed to each thread whose attempt finished: all in one transaction. Without
    ``savepoints`` a run's plan that fails raises ``PlanFailed`` (``advance_locked``)."""
    for item in batch:
        item.reset()
    missing = [item.task_id for item in batch if item.run_id is None]
    if missing:
        owners = dict(Task.objects.filter(pk__in=missing).values_list("id", "run_id"))
        for item in batch:
            item.run_id = item.run_id if item.run_id is not None else owners.get(item.task_id)
    now = timezone.now()
    with transaction.atomic():
        # Every writer of a run's tasks locks the run first; several runs, in key order.
        # Its reads are statements built once per process (``select_where``): the ORM's
        # query compiler cost more than the queries, on the worker's one critical path.
        runs = {run.pk: run for run in _lock_runs({item.run_id for item in batch})}
        # A claim reads its step's launch; a finished attempt reads it only to retry.
        tasks = _tasks(
            _CLAIM_READ, [item.task_id for item in batch if item.outcome is None and item.argv is None]
        )
        tasks.update(_tasks(_RECORD_READ, [item.task_id for item in batch if item.outcome is not None]))
        attempts: list[TaskAttempt] = []
        recorded: dict[Any, list[_Work]] = {}
        # The claims and records of a batch share one new revision per run: nothing reads
        # the run's records between them (the advances below read, then bump again).
        stamped: dict[Any, int] = {}
        # The batch's row updates, one statement per shape (flushed before each read).
        writes = RowWrites()
        # The fields of each run changed and not yet written (its revision, what its
        # advance changed): its row is written once, at the end.
        unwritten: dict[Any, set[str]] = {}

        def stamp(run: Run) -> int:
            if run.pk not in stamped:
                stamped[run.pk] = next_revision(run)
                unwritten.setdefault(run.pk, set()).add("revision")
            return stamped[run.pk]

        for item in batch:
            task, run = tasks.get(item.task_id), runs.get(item.run_id)
            if run is None:
                continue
            if item.argv is not None:
                TaskAttempt.objects.filter(task_id=item.task_id, number=item.attempt).update(
                    command=item.argv
                )
                Task.objects.filter(pk=item.task_id).update(command=item.argv)
                continue
            if item.outcome is None:
                item.claimed = _claim_locked(run, task, now, partial(stamp, run), attempts, writes)
                if isinstance(item.claimed, list):  # it advanced the run: its records were read
                    stamped.pop(run.pk, None)
                continue
            if task is None:
                continue
            if task.state != RuntimeState.RUNNING or task.lease_owner != item.token:
                # The reaper (or a terminate) already decided this attempt's fate; keep its decision.
                TaskAttempt.objects.filter(
                    task_id=task.pk, number=item.attempt, finished_at__isnull=True
                ).update(
                    state=RuntimeState.CANCELED,
                    finished_at=now,
                    error=item.outcome.error or "superseded: the step was taken over",
                    **({"command": _stored_argv(item.outcome.argv)} if item.outcome.argv else {}),
                )
                continue
            item.ready = finish_attempt(run, task, item.attempt, item.outcome, stamp(run), writes)
            recorded.setdefault(run.pk, []).append(item)
        writes.flush()  # the advances read what the batch wrote
        for run_pk, items in recorded.items():
            # One plan per run for all its attempts; each waiting thread gets a ready step.
            advanced = advance_locked(
                runs[run_pk], unwritten=unwritten.setdefault(run_pk, set()), savepoint=savepoints
            )
            for index, step in enumerate(advanced):
                items[index % len(items)].ready.append(step)
        stamped.clear()  # the advances read the records: what follows needs a new revision
        heads = {item.ready[0]: item for items in recorded.values() for item in items if item.ready}
        if heads:
            # Each thread runs the first step it was handed next: claim it now, not in a
            # transaction of its own.
            for head in select_where(Task, _CLAIM_READ, {"pk__in": sorted(heads)}, order_by=("pk",)):
                item = heads[head.pk]
                claimed = _claim_locked(
                    runs[item.run_id], head, now, partial(stamp, runs[item.run_id]), attempts, writes
                )
                if isinstance(claimed, _Claim):
                    item.claimed = claimed
                else:
                    stamped.pop(item.run_id, None)
        _pull(recorded, runs, now, stamp, attempts, writes)
        writes.flush()
        TaskAttempt.objects.bulk_create(attempts)
        for run_pk, fields in sorted(unwritten.items()):
            run = runs[run_pk]
            if not update_where(Run, {"pk": run_pk}, **{name: getattr(run, name) for name in sorted(fields)}):
                raise DatabaseError(f"run {run_pk} was deleted while its steps were recorded")


# Columns a group commit does not read: Run's spec (parsed once per process) and
# executor state.
_RUN_UNREAD = ("pipeline_spec", "platform_spec", "executor_state")
_RUN_READ = tuple(f.name for f in Run._meta.concrete_fields if f.name not in _RUN_UNREAD)


def _lock_runs(run_ids: set[Any]) -> list[Run]:
    """The batch's runs, locked (every writer of a run's tasks locks the run first;
    several runs, in key order), each with its namespace, as
    ``Run.objects.select_for_update().select_related("namespace")`` reads them, except
    that the namespace's row is read, not locked: no writer of a run needs it locked (a
    namespace is never renamed, and cannot be deleted while it has runs), and the runs of
    one namespace no longer queue behind each other's group commits on MariaDB. A run's
    namespace is read once per process (``_RunNamespaces``), not once per batch."""
    # A step that no longer exists (a message that outlived its run) has no run: skipped.
    wanted = sorted(run_id for run_id in run_ids if run_id is not None)
    runs = select_where(Run, _RUN_READ, {"pk__in": wanted}, order_by=("pk",), for_update=True)
    known = _run_namespaces.get(runs)
    missing = sorted({run.namespace_id for run in runs if run.pk not in known})
    if missing:
        read = {ns.pk: ns for ns in select_where(Namespace, _NAMESPACE_READ, {"pk__in": missing})}
        known.update({run.pk: read[run.namespace_id] for run in runs if run.pk not in known})
        _run_namespaces.remember(runs, known)
    for run in runs:
        Run.namespace.field.set_cached_value(run, known[run.pk])
    return runs


class _RunNamespaces:
    """Each run's namespace, as this process last read it, by run id.

    Kept by run, not by namespace id: a run never moves to another namespace, a
    namespace is never renamed (its name is read-only once set) and cannot be deleted
    while it has runs, and run ids are never reused. A namespace id can be (SQLite
    reuses the largest after a delete), so a cache by namespace id could give a new
    namespace an old one's name, and its steps the old tenant's directory. Only the
    name and the key are used here (the description may have changed since: nothing in
    a group commit reads it)."""

    LIMIT = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_run: OrderedDict[Any, Namespace] = OrderedDict()

    def get(self, runs: list[Run]) -> dict[Any, Namespace]:
        """The namespaces known for these runs (a run whose namespace id differs is not)."""
        out: dict[Any, Namespace] = {}
        with self._lock:
            for run in runs:
                namespace = self._by_run.get(run.pk)
                if namespace is not None and namespace.pk == run.namespace_id:
                    out[run.pk] = namespace
                    self._by_run.move_to_end(run.pk)
        return out

    def remember(self, runs: list[Run], namespaces: dict[Any, Namespace]) -> None:
        with self._lock:
            for run in runs:
                self._by_run[run.pk] = namespaces[run.pk]
                self._by_run.move_to_end(run.pk)
            while len(self._by_run) > self.LIMIT:
                self._by_run.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._by_run.clear()


_run_namespaces = _RunNamespaces()


def _tasks(fields: Sequence[str], task_ids: list[Any]) -> dict[Any, Task]:
    """``Task.objects.only(*fields).in_bulk(task_ids)``, as ``select_where`` reads."""
    return {task.pk: task for task in select_where(Task, fields, {"pk__in": task_ids})}


# The columns of a Task a group commit reads: to claim it (``_claim_locked``), and to
# record an attempt's end (``finish_attempt``; a failure reads ``launch`` too, for the
# retry policy: one more query, on that path only). The other 25 or so are not built
# (six timestamps and four UUIDs parsed per row, for every step of a fan-out).
_RECORD_READ = ("id", "state", "lease_owner", "state_history")
_CLAIM_READ = (*_RECORD_READ, "kind", "not_before", "attempt", "started_at", "launch")
_NAMESPACE_READ = tuple(f.name for f in Namespace._meta.concrete_fields)


def _pull(
    recorded: dict[Any, list[_Work]],
    runs: dict[Any, Run],
    now: Any,
    stamp: Callable[[Run], int],
    attempts: list[TaskAttempt],
    writes: RowWrites,
) -> None:
    """Each pulling thread that was handed nothing takes one of its run's queued steps,
    claimed in this same transaction (the run is locked). The steps of a wide fan-out
    beyond ``dispatch.MESSAGES_PER_ADVANCE`` have no broker message: they are run this
    way, by the threads that run the run's other steps."""
    for run_pk, items in recorded.items():
        idle = [item for item in items if item.pull and not item.ready]
        run = runs[run_pk]
        if not idle or run.state != RuntimeState.RUNNING:
            continue
        writes.flush()  # the steps just claimed are no longer queued
        # The first found on the (run, state) index: no sort of the backlog.
        queued = select_where(
            Task,
            _CLAIM_READ,
            {
                "run_id": run_pk,
                "state": RuntimeState.PENDING,
                "kind": TaskKind.CONTAINER,
                "not_before__null_or_lte": now,
            },
            limit=len(idle),
        )
        for item, task in zip(idle, queued, strict=False):
            claimed = _claim_locked(run, task, now, partial(stamp, run), attempts, writes)
            if isinstance(claimed, _Claim):
                item.claimed, item.ready = claimed, [task.pk]


def advance_if_needed(*, run_id: Any) -> list[uuid.UUID]:
    """Advance the run unless another process already planned since our last change."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("namespace").filter(pk=run_id).first()
        if run is None or not run.needs_advance:
            return []
        return advance_locked(run)


class _Immediate:
    """``RowWrites.update`` sent at once (``update_where``), its row count not checked."""

    @staticmethod
    def update(
        model: type[Model], key: dict[str, Any], where: dict[str, Any] | None = None, **values: Any
    ) -> None:
        update_where(model, {**key, **(where or {})}, **values)


def finish_attempt(
    run: Run,
    task: Task,
    attempt: int,
    outcome: StepOutcome,
    revision: int | None = None,
    writes: RowWrites | None = None,
) -> list[uuid.UUID]:
    """Record how one attempt ended (caller holds the run lock): success with outputs,
    cancel, a retry per the step's policy, or failure. Returns steps ready at once.
    ``revision``: the revision to stamp (default: a new one). A success's two UPDATEs
    join ``writes``, if given (else they are sent now)."""
    now = timezone.now()
    history = list(task.state_history)
    stamp = revision if revision is not None else bump_revision(run)
    common: dict[str, Any] = {"lease_owner": "", "lease_expires_at": None, "revision": stamp}
    # The command line, unless an earlier write stored it (a heartbeat while it ran).
    command: dict[str, Any] = {"command": _stored_argv(outcome.argv)} if outcome.argv else {}
    ready: list[uuid.UUID] = []
    if outcome.outputs is not None:
        outputs = record_artifacts(run, task.pk, outcome.outputs)
        sent = writes if writes is not None else _Immediate()
        sent.update(
            TaskAttempt,
            {"task": task.pk, "number": attempt},
            state=RuntimeState.SUCCEEDED,
            exit_code=outcome.exit_code,
            finished_at=now,
            sandbox=outcome.sandbox,
            **command,
        )
        sent.update(
            Task,
            {"pk": task.pk},
            state=RuntimeState.SUCCEEDED,
            outputs=io_to_json(outputs),
            finished_at=now,
            error="",
            state_history=[*history, state_entry(RuntimeState.SUCCEEDED, at=now)],
            **common,
            **command,
        )
        return ready
    # Built only off the success path (a QuerySet costs more to build than to run).
    attempt_row = TaskAttempt.objects.filter(task_id=task.pk, number=attempt)
    if outcome.canceled and run.state == RuntimeState.CANCELING:
        attempt_row.update(
            state=RuntimeState.CANCELED,
            exit_code=outcome.exit_code,
            error=outcome.error,
            finished_at=now,
            sandbox=outcome.sandbox,
            **command,
        )
        Task.objects.filter(pk=task.pk).update(
            state=RuntimeState.CANCELED,
            finished_at=now,
            error="terminated",
            state_history=[*history, state_entry(RuntimeState.CANCELED, "terminated", now)],
            **common,
            **command,
        )
        return ready
    attempt_row.update(
        state=RuntimeState.FAILED,
        exit_code=outcome.exit_code,
        error=outcome.error,
        finished_at=now,
        sandbox=outcome.sandbox,
        **command,
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
            **command,
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
        **command,
    )
    return ready
