"""The local run executor, part one: planning a KFP IR run with Canal's engine.

``advance_locked`` takes a run whose row the caller has locked (``SELECT … FOR
UPDATE``: a finishing step and the scheduler's reaper may both advance the same
run, and only one may plan at a time), asks the pure engine what is next and
writes the decisions. Importer steps and cache hits complete right there;
container steps come back as ids for ``local_steps.task_execute``. The database
is the source of truth; Celery only carries ids.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from apps.backends.local.launcher import (
    RUN_WORKSPACE,
)
from apps.core.choices import PipelineFormat, RunExecutor, RuntimeState, TaskKind
from apps.core.db import RowWrites, insert_bounded, select_values, update_where
from apps.core.exceptions import FailedPrecondition
from apps.core.storage import store_config
from apps.core.text import without_surrogates
from apps.engine.execution import ActiveExecution, EngineError
from apps.engine.executor_io import OutputError, resolve_importer
from apps.engine.keys import node_key, task_uuid
from apps.engine.model import ArtifactRef, NodeIO, Plan, RunContext, StepLaunch
from apps.engine.retry import plan_run_retry
from apps.engine.serialize import dump
from apps.engine.spec import PipelineSpec, SpecError, parse_pipeline_spec
from apps.runs import dispatch
from apps.runs.models import Run, Task
from apps.runs.services.executors import RunExecutorBase, register_run_executor
from apps.runs.services.lifecycle import set_run_state, state_entry
from apps.runs.services.records import (
    RunRecords,
    bump_revision,
    cached_records,
    io_from_json,
    io_to_json,
    load_records,
    next_revision,
)
from apps.runs.services.storage import (
    import_refusal,
    run_pipeline_root_verify,
    run_uri_usable,
    run_work_root,
)
from apps.storage import StorageError, get_store

logger = logging.getLogger("canal.execution")

MAX_PLAN_ROUNDS = 100  # importer steps and cache hits finish inline and may unblock more
GROUP_TASK_KINDS = (TaskKind.ROOT, TaskKind.DAG, TaskKind.LOOP, TaskKind.ITERATION)

_spec_cache: OrderedDict[str, PipelineSpec] = OrderedDict()
_spec_lock = threading.Lock()


def _spec(run: Run) -> PipelineSpec:
    # A run's spec never changes: parse it once per process.
    key = str(run.pk)
    with _spec_lock:
        cached = _spec_cache.get(key)
        if cached is not None:
            _spec_cache.move_to_end(key)
            return cached
    spec = parse_pipeline_spec(run.pipeline_spec, run.platform_spec)
    with _spec_lock:
        _spec_cache[key] = spec
        while len(_spec_cache) > 128:
            _spec_cache.popitem(last=False)
    return spec


def run_context(run: Run) -> RunContext:
    """The engine's view of a run."""
    return RunContext(
        run_id=str(run.pk),
        run_name=run.display_name,
        pipeline_name=run.pipeline_name,
        pipeline_root=run.pipeline_root,
        namespace=run.namespace.name if run.namespace_id else "",
        parameters=run.runtime_parameters or {},
        created_at=run.created_at,
        scheduled_at=run.scheduled_at,
        enable_caching=run.enable_caching,
        canceling=run.state == RuntimeState.CANCELING,
        # As KFP's backend names it: {{$.pipeline_job_resource_name}}.
        resource_name=f"{run.pipeline_name}-{run.pk}",
        # Each run's own workspace, inside its namespace's step directories (every step of
        # the run may read and write it; no other run sees it).
        workspace_path=str(run_work_root(run.pk, run.namespace.name) / RUN_WORKSPACE),
    )


class PlanFailed(Exception):
    """A run's plan failed in an advance without a savepoint (``advance_locked(...,
    savepoint=False)``): what it wrote is in the caller's transaction, which must roll
    back whole (and may be done again with savepoints)."""

    def __init__(self, run_id: Any, cause: Exception) -> None:
        super().__init__(f"run {run_id} could not be planned: {cause!r}")
        self.run_id = run_id
        self.cause = cause


def advance_locked(run: Run, *, unwritten: set[str] | None = None, savepoint: bool = True) -> list[uuid.UUID]:
    """``run_advance`` for a run already locked by the caller's transaction. With
    ``unwritten``, the run's row is not written here: the names of the fields it changed
    are added to that set, for the caller to write before its transaction ends (a group
    commit writes its runs' rows once, at its end).

    A plan that fails half-way must leave nothing of itself. By default a savepoint
    around the plan sees to that, and the run then fails with the reason. Without one
    (``savepoint=False``: two statements less, for the worker's group commit) a failure
    raises ``PlanFailed`` instead, and the caller rolls its whole transaction back."""
    if run.state in RuntimeState.terminal():
        if run.needs_advance:
            Run.objects.filter(pk=run.pk).update(needs_advance=False)
        return []
    started = time.perf_counter()
    run.needs_advance = False
    fields = {"state", "state_history", "started_at", "finished_at", "error", "needs_advance", "revision"}
    if run.state == RuntimeState.PENDING:
        set_run_state(run, RuntimeState.RUNNING)
    to_dispatch: list[uuid.UUID] = []
    try:
        if run_pipeline_root_verify(run=run):
            fields.add("pipeline_root")
        if savepoint:
            # A savepoint: if planning or writing a plan fails half-way, none of it stays.
            with transaction.atomic():
                _plan_and_apply(run, to_dispatch)
        else:
            try:
                _plan_and_apply(run, to_dispatch)
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:
                raise PlanFailed(run.pk, exc) from exc
    except PlanFailed:
        raise
    except (OperationalError, InterfaceError):
        # The database's trouble, not the run's (a lock conflict, a lost connection): the
        # caller retries the whole transaction, or the reaper advances the run later.
        raise
    except (EngineError, SpecError) as exc:
        # A spec the importer accepted but the engine cannot run: fail the run, say why.
        logger.warning("run %s cannot be planned: %s", run.pk, exc)
        fail_run_locked(run, exc, error=f"cannot run this pipeline: {exc}")
        to_dispatch = []
    except Exception as exc:
        # Anything else (a bug, a value no encoder accepts) fails the run with the reason
        # too: left to propagate, it would roll the advance back and leave the run
        # PENDING or RUNNING, to fail again on every reaper pass.
        fail_run_locked(run, exc)
        to_dispatch = []
    if unwritten is not None:
        unwritten.update(fields)
    # ``run.save(update_fields=…)``, with the statement built once per process.
    elif not update_where(Run, {"pk": run.pk}, **{name: getattr(run, name) for name in sorted(fields)}):
        raise DatabaseError(f"run {run.pk} was deleted while it was advanced")
    logger.debug(
        "planned run %s in %.3fs; %d step(s) ready", run.pk, time.perf_counter() - started, len(to_dispatch)
    )
    return to_dispatch


def _plan_and_apply(run: Run, to_dispatch: list[uuid.UUID]) -> None:
    """Plan and write until the run settles. The engine settles everything that needs no
    I/O in one plan; only inline I/O (cache hits, importers) calls for another round."""
    records: RunRecords | None = None
    for _ in range(MAX_PLAN_ROUNDS):
        records = cached_records(run, records)
        plan = _kept_engine(run, records).advance()
        if plan.is_empty():
            return
        progressed = _apply(run, plan, records.ids, to_dispatch)
        if plan.run_outcome is not None:
            outcome = plan.run_outcome
            set_run_state(run, str(outcome.state), error=outcome.error or "")
            return
        if not progressed:
            return
    # Still finishing steps inline after MAX_PLAN_ROUNDS (a chain of that many cache hits
    # or importers): keep this transaction short and continue in a fresh one. Every round
    # finished at least one step, so the continuations end.
    logger.info("run %s: %d planning rounds in one advance; continuing in another", run.pk, MAX_PLAN_ROUNDS)
    run.needs_advance = True
    dispatch.run_advance_later(run.pk)


def _kept_engine(run: Run, records: RunRecords) -> ActiveExecution:
    """The run's engine, kept with its records in this worker and fed what changed since
    it last planned (``records.changed``: steps other workers claimed and finished, and
    the rows this advance's own plans wrote). Built from every record the first time,
    after a restart, a run retry (a new epoch) or a rolled-back advance."""
    context = run_context(run)
    engine: ActiveExecution | None = records.engine
    if engine is not None:
        try:
            for record in records.changed:
                engine.apply(record)
        except EngineError:
            # The records contradict what it knew (which a rebuild judges on its own).
            logger.warning("run %s: rebuilding its engine from the records", run.pk, exc_info=True)
            engine = None
    if engine is None:
        engine = ActiveExecution(_spec(run), context, records.records.values())
        records.engine = engine
    elif engine.ctx != context:
        engine.set_context(context)
    records.changed = []
    return engine


def fail_run_locked(run: Run, exc: BaseException, *, error: str = "") -> None:
    """Fail a run whose advance raised (caller holds the run lock; writes of the failed
    attempt were rolled back): the run ends FAILED with the reason, queued steps are
    canceled and unfinished groups fail, so nothing waits on it."""
    if not error:
        logger.exception("run %s could not be advanced", run.pk)
        error = f"internal error while planning this run: {type(exc).__name__}: {exc}"
    error = without_surrogates(error)  # it is stored and shown; it must be encodable
    set_run_state(run, RuntimeState.FAILED, error=error)
    run.needs_advance = False
    revision = bump_revision(run)
    Task.objects.filter(run=run, state=RuntimeState.PENDING).update(
        state=RuntimeState.CANCELED, revision=revision
    )
    Task.objects.filter(
        run=run, kind__in=GROUP_TASK_KINDS, state__in=[RuntimeState.RUNNING, RuntimeState.CANCELING]
    ).update(state=RuntimeState.FAILED, error=error, finished_at=timezone.now(), revision=revision)


def _display_command(launch: StepLaunch) -> list[str]:
    if launch.container is None:
        return []
    return [*launch.container.command, *launch.container.args]


def _apply(
    run: Run,
    plan: Plan,
    ids: dict[str, uuid.UUID],
    to_dispatch: list[uuid.UUID],
) -> bool:
    """Write one plan. Returns True if something finished inline (so re-plan)."""
    now = timezone.now()
    revision = next_revision(run)  # advance_locked writes the run row, revision with it
    new_tasks: list[Task] = []
    inline_done = False
    importers: list[tuple[Task, StepLaunch]] = []
    for create in plan.creates:
        # The engine rendered {{$.pipeline_task_uuid}} with this same id.
        task_id = uuid.UUID(task_uuid(str(run.pk), create.key))
        ids[create.key] = task_id
        state = str(create.state)
        launch = create.launch
        task = Task(
            id=task_id,
            run=run,
            namespace_id=run.namespace_id,
            parent_id=ids.get(create.parent_key) if create.parent_key else None,
            key=create.key,
            node=node_key(create.key),
            name=create.task_name,
            display_name=create.display_name or create.task_name,
            kind=str(create.kind),
            component_name=create.component_name,
            executor_label=create.executor_label,
            iteration_index=create.iteration_index,
            iteration_count=create.iteration_count,
            state=state,
            state_history=[state_entry(state, create.reason, now)],
            status_message=create.reason,
            error=create.error or "",
            inputs=io_to_json(create.inputs),
            revision=revision,
            started_at=now if state == RuntimeState.RUNNING else None,
            finished_at=now if state in RuntimeState.terminal() else None,
        )
        if launch is not None:
            task.launch = dump(launch)
            task.image = launch.container.image if launch.container else ""
            task.command = _display_command(launch)
            caching = launch.caching
            task.cache_fingerprint = caching.fingerprint or caching.computed_fingerprint
            if launch.importer is not None:
                importers.append((task, launch))
            elif state == RuntimeState.PENDING:
                hit = _cache_lookup(run, launch) if caching.enabled else None
                if hit is not None:
                    _mark_cached(task, hit, now)
                    inline_done = True
                else:
                    task.cache_status = (
                        "not cached: no earlier result" if caching.enabled else "caching disabled"
                    )
                    task.dispatched_at = now
                    to_dispatch.append(task_id)
        new_tasks.append(task)
    if new_tasks:
        insert_bounded(Task, new_tasks)
    for task, launch in importers:
        _run_importer(run, task, launch, now, revision)
        inline_done = True
    if plan.completes:
        # Only the finishing nodes' histories are read (not every row's, every advance).
        histories = {
            row["id"]: row["state_history"]
            for row in select_values(
                Task, ("id", "state_history"), {"pk__in": [ids[c.key] for c in plan.completes]}
            )
        }
    # One UPDATE for the finished groups (each iteration of a fan-out), not one per group.
    finished = RowWrites()
    for complete in plan.completes:
        task_id = ids[complete.key]
        state = str(complete.state)
        finished.update(
            Task,
            {"pk": task_id},
            state=state,
            revision=revision,
            outputs=io_to_json(complete.outputs),
            error=complete.error or "",
            finished_at=now,
            state_history=[*(histories.get(task_id) or []), state_entry(state, complete.error or "", now)],
        )
    finished.flush()
    return inline_done


def _cache_lookup(run: Run, launch: StepLaunch) -> Task | None:
    """The newest successful execution with the same fingerprint in this namespace and
    pipeline, whose artifacts still exist (KFP serves deleted artifacts from cache: #7939)."""
    fingerprint = launch.caching.fingerprint
    if not fingerprint:
        return None
    candidates = (
        Task.objects.filter(
            cache_fingerprint=fingerprint,
            state=RuntimeState.SUCCEEDED,
            kind=TaskKind.CONTAINER,
            run__namespace_id=run.namespace_id,
            run__pipeline_name=run.pipeline_name,
        )
        .select_related("run")
        .order_by("-finished_at")[:5]
    )
    config = store_config()
    for candidate in candidates:
        outputs = io_from_json(candidate.outputs)
        try:
            present = all(
                get_store(ref.uri, config).exists(ref.uri)
                for refs in outputs.artifacts.values()
                for ref in refs
                if ref.uri
            )
        except StorageError:
            present = False
        if present:
            return candidate
    return None


CACHE_STATUS_LENGTH = Task._meta.get_field("cache_status").max_length or 255


def _fitting(text: str, length: int) -> str:
    """``text``, its end shortened to ``…`` if it is longer than ``length``."""
    return text if len(text) <= length else text[: length - 1] + "…"


def _mark_cached(task: Task, hit: Task, now: Any) -> None:
    origin_id = hit.cached_from_id or hit.pk
    task.state = RuntimeState.SUCCEEDED
    task.outputs = hit.outputs
    task.cached_from_id = origin_id
    # The origin's key can be up to 512 characters; the status is a column of 255.
    task.cache_status = _fitting(f"cached from run {hit.run_id} / task {hit.key}", CACHE_STATUS_LENGTH)
    task.started_at = task.finished_at = now
    task.state_history = [*task.state_history, state_entry(RuntimeState.SUCCEEDED, "cache hit", now)]


def _run_importer(run: Run, task: Task, launch: StepLaunch, now: Any, revision: int) -> None:
    """Importers run no process: record the artifact and succeed (or fail with the reason)."""
    try:
        imported = resolve_importer(launch)
        # Checked here too, not only at creation: the URI may come from an upstream output.
        for refs in imported.outputs.artifacts.values():
            for ref in refs:
                if not run_uri_usable(run=run, uri=ref.uri):
                    raise OutputError(import_refusal(uri=ref.uri, namespace_name=run.namespace.name))
    except OutputError as exc:
        Task.objects.filter(pk=task.pk).update(
            state=RuntimeState.FAILED,
            revision=revision,
            error=str(exc),
            finished_at=now,
            state_history=[*task.state_history, state_entry(RuntimeState.FAILED, str(exc), now)],
        )
        return
    outputs = record_artifacts(run, task.pk, imported.outputs)
    Task.objects.filter(pk=task.pk).update(
        state=RuntimeState.SUCCEEDED,
        revision=revision,
        outputs=io_to_json(outputs),
        started_at=now,
        finished_at=now,
        state_history=[*task.state_history, state_entry(RuntimeState.SUCCEEDED, "", now)],
    )


def record_artifacts(run: Run, task_id: Any, outputs: NodeIO) -> NodeIO:
    """Create Artifact rows for a step's outputs; the refs get their ids. Through the
    run's ``artifacts`` relation: the artifacts app sits above runs (it reads runs), so
    runs does not import its models."""
    recorded: dict[str, list[ArtifactRef]] = {}
    for name, refs in outputs.artifacts.items():
        out = []
        for ref in refs:
            artifact = run.artifacts.create(
                producer_task_id=task_id,
                name=name,
                display_name=ref.name if ref.name != name else "",
                schema_title=ref.schema_title,
                schema_version=ref.schema_version,
                uri=ref.uri,
                metadata=dict(ref.metadata),
            )
            out.append(replace(ref, id=str(artifact.pk)))
        recorded[name] = out
    return NodeIO(outputs.parameters, recorded)


@register_run_executor(RunExecutor.LOCAL, PipelineFormat.KFP_IR)
class LocalEngineExecutor(RunExecutorBase):
    """KFP IR on the local executor: Canal's engine plans, the workers run the steps."""

    def advance(self, run: Run) -> list[uuid.UUID]:
        return advance_locked(run)

    def terminate(self, run: Run) -> None:
        # Queued steps are canceled at once; running ones are killed by their workers,
        # whose next heartbeat sees the run CANCELING.
        now = timezone.now()
        revision = bump_revision(run)
        for task in Task.objects.filter(run=run, state=RuntimeState.PENDING).only("id", "state_history"):
            Task.objects.filter(pk=task.pk, state=RuntimeState.PENDING).update(
                state=RuntimeState.CANCELED,
                revision=revision,
                finished_at=now,
                status_message="canceled before it started (run terminated)",
                state_history=[*task.state_history, state_entry(RuntimeState.CANCELED, at=now)],
            )

    def retry(self, run: Run) -> None:
        try:
            plan = plan_run_retry(load_records(run))
        except ValueError as exc:  # e.g. it failed before its first step: nothing to resume
            raise FailedPrecondition(
                f"this run cannot be retried ({exc}); start a new run instead (clone it)"
            ) from exc
        revision = bump_revision(run)
        if plan.delete:
            # Deleting cascades their attempts' rows; their log files stay on disk. Workers'
            # record caches can't see a deletion: a new epoch makes them start over.
            Task.objects.filter(run=run, key__in=list(plan.delete)).delete()
            run.records_epoch += 1
            Run.objects.filter(pk=run.pk).update(records_epoch=run.records_epoch)
        if plan.reopen:
            Task.objects.filter(run=run, key__in=list(plan.reopen)).update(
                revision=revision, state=RuntimeState.RUNNING, finished_at=None, error="", status_message=""
            )
