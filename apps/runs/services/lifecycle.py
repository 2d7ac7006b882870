"""Run lifecycle: create, terminate, retry, clone, archive, delete.

Every function takes keyword arguments and does its writes in one transaction;
work for the workers is published only after that transaction commits. Each one
takes the acting user (``actor=``; the scheduler passes ``SCHEDULER``) and checks
its role in the run's namespace before writing (``apps.core.authz``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.authz import Action, Actor, actor_is_system, actor_user, namespace_authorize
from apps.core.choices import PipelineFormat, RunExecutor, RuntimeState, StorageState
from apps.core.exceptions import Conflict, FailedPrecondition, InvalidInput
from apps.core.models import Namespace
from apps.engine.runtime_params import ParameterError, coerce_runtime_parameters
from apps.experiments.models import Experiment
from apps.experiments.services import experiment_for_new_runs
from apps.importers import PipelineImportError, import_spec_dict
from apps.pipelines.models import PipelineVersion
from apps.runs import dispatch
from apps.runs.models import Run
from apps.runs.services.executors import executor_check, executor_choose, run_executor_for
from apps.runs.services.storage import importer_uris_check, pipeline_root_for_run

MAX_NAME = 255


def state_entry(state: str, error: str = "", at: datetime | None = None) -> dict[str, Any]:
    """One ``state_history`` item, shaped as KFP's RuntimeStatus."""
    entry: dict[str, Any] = {"update_time": (at or timezone.now()).isoformat(), "state": state}
    if error:
        entry["error"] = {"message": error}
    return entry


def set_run_state(run: Run, state: str, *, error: str = "") -> None:
    """Move a run to ``state`` (in memory) with its history, times and error."""
    if run.state == state:
        return
    now = timezone.now()
    run.state = state
    run.state_history = [*run.state_history, state_entry(state, error, now)]
    if state == RuntimeState.RUNNING and run.started_at is None:
        run.started_at = now
    if state in RuntimeState.terminal():
        run.finished_at = now
        run.error = error
    elif state in (RuntimeState.RUNNING, RuntimeState.PENDING):
        run.finished_at = None
        run.error = ""


def inline_spec_import(
    pipeline_spec: dict[str, Any], platform_spec: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """(spec, platform spec, format) of a spec given inline (the API's ``pipeline_spec``,
    a run or a recurring run), or InvalidInput on ``pipeline_spec`` naming what is wrong.

    KFP IR or an Argo Workflow, as KFP's own API takes either (its backend tells a v1
    Workflow from v2 IR by the document). Like KFP, an inline Argo document must be a
    Workflow: a WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow is uploaded
    as a pipeline (where its templates and schedule are kept), not run inline."""
    try:
        imported = import_spec_dict(pipeline_spec, platform_spec)
    except PipelineImportError as exc:
        raise InvalidInput(str(exc), field="pipeline_spec") from exc
    # The importer's format names (a Literal) are the model's choices' values.
    spec_format = PipelineFormat(imported.format)
    kind = imported.source_kind
    if spec_format == PipelineFormat.ARGO and kind != "Workflow":
        raise InvalidInput(
            f"an inline Argo pipeline_spec must be a Workflow, not a {kind}: upload a {kind} as a pipeline "
            "and run its version",
            field="pipeline_spec",
        )
    return imported.pipeline_spec, imported.platform_spec, spec_format


def argo_runnable_check(
    *, spec_format: str, spec: dict[str, Any], executor: str, parameters: dict[str, Any], field: str
) -> None:
    """Refuse, before anything is written, an Argo Workflow its executor cannot run: what
    the local interpreter does not support (with these parameters), or what a pipeline
    may not ask of the cluster. InvalidInput on ``field`` (where the spec came from)."""
    if spec_format != PipelineFormat.ARGO:
        return
    if executor == RunExecutor.LOCAL:
        from apps.runs.services.argo_interpreted import interpretable_check

        interpretable_check(workflow=spec, parameters=parameters, field=field)
    elif executor == RunExecutor.ARGO:
        from apps.runs.services.argo_cluster import cluster_policy_check

        cluster_policy_check(spec, field=field)


def _resolve_spec(
    *,
    pipeline_version: PipelineVersion | None,
    pipeline_spec: dict[str, Any] | None,
    platform_spec: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """(spec, platform spec, format) of the version or the inline spec."""
    if (pipeline_version is None) == (pipeline_spec is None):
        raise InvalidInput(
            "give exactly one of a pipeline version or an inline pipeline spec", field="pipeline_spec"
        )
    if pipeline_version is not None:
        return pipeline_version.pipeline_spec, pipeline_version.platform_spec, pipeline_version.format
    assert pipeline_spec is not None
    return inline_spec_import(pipeline_spec, platform_spec)


def _pipeline_name(spec: dict[str, Any], spec_format: str) -> str:
    if spec_format == PipelineFormat.ARGO:
        metadata = spec.get("metadata") or {}
        return str(metadata.get("name") or metadata.get("generateName") or "").rstrip("-")
    return str((spec.get("pipelineInfo") or {}).get("name") or "")


def run_create(
    *,
    actor: Actor,
    namespace: Namespace,
    display_name: str,
    experiment: Experiment | None = None,
    pipeline_version: PipelineVersion | None = None,
    pipeline_spec: dict[str, Any] | None = None,
    platform_spec: dict[str, Any] | None = None,
    description: str = "",
    parameters: dict[str, Any] | None = None,
    pipeline_root: str = "",
    enable_caching: bool | None = None,
    service_account: str = "",
    recurring_run: Any = None,
    scheduled_at: datetime | None = None,
    run_id: uuid.UUID | None = None,
    executor: str = "",
    cloned_from: Run | None = None,
    rerun_of: Run | None = None,
    rerun_of_task_key: str = "",
    created_by: Any = None,
) -> Run:
    """Validate and create a run, then start it once the transaction commits.

    The actor needs the editor role in ``namespace``, and must be able to see the
    pipeline version or run it starts from. ``created_by`` is honoured only for a
    system actor (the scheduler records the schedule's author); otherwise the run's
    author is the actor. The pipeline root and the importers' URIs are checked (see
    ``services.storage``). Raises PermissionDenied, NotFound, InvalidInput (bad spec,
    unknown or mistyped parameters, a pipeline root that is not configured, an importer
    URI the namespace does not own), FailedPrecondition (archived experiment) or
    Conflict (a schedule instant that already fired).
    """
    namespace_authorize(actor=actor, namespace=namespace, action=Action.RUN_CREATE)
    sources = (pipeline_version.pipeline if pipeline_version is not None else None, cloned_from, rerun_of)
    for source in sources:
        if source is not None and source.namespace_id != namespace.pk:
            namespace_authorize(actor=actor, namespace=source.namespace, action=Action.VIEW)
    name = (display_name or "").strip()
    if not name:
        raise InvalidInput("display_name is required", field="display_name")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"display_name is longer than {MAX_NAME} characters", field="display_name")
    spec, platform, spec_format = _resolve_spec(
        pipeline_version=pipeline_version, pipeline_spec=pipeline_spec, platform_spec=platform_spec
    )
    try:
        coerced = coerce_runtime_parameters(spec, parameters)
    except ParameterError as exc:
        field = next(iter(exc.errors))
        raise InvalidInput(f"invalid parameters: {exc}", field=f"parameters.{field}") from exc
    root = pipeline_root_for_run(requested=pipeline_root, spec=spec)
    if spec_format == PipelineFormat.KFP_IR:
        importer_uris_check(namespace=namespace, spec=spec, platform_spec=platform, parameters=coerced)
    experiment = experiment_for_new_runs(namespace=namespace, experiment=experiment)
    chosen = executor_choose(requested=executor, experiment=experiment)
    executor_check(executor=chosen, spec_format=spec_format)
    if chosen == RunExecutor.ARGO and spec_format == PipelineFormat.KFP_IR and "://" not in root:
        raise InvalidInput(
            f"the argo executor keeps artifacts in the cluster's object store, not in {root}: "
            "give the run an s3:// or minio:// pipeline root (or set CANAL_PIPELINE_ROOT to one)",
            field="pipeline_root",
        )
    argo_runnable_check(
        spec_format=spec_format,
        spec=spec,
        executor=chosen,
        parameters=coerced,
        field="pipeline_version" if pipeline_version is not None else "pipeline_spec",
    )
    pipeline_name = _pipeline_name(spec, spec_format) or name
    now = timezone.now()
    run = Run(
        id=run_id or uuid.uuid4(),
        namespace=namespace,
        experiment=experiment,
        display_name=name,
        description=description or "",
        pipeline_version=pipeline_version,
        pipeline_spec=spec,
        platform_spec=platform,
        spec_format=spec_format,
        executor=chosen,
        pipeline_name=pipeline_name,
        runtime_parameters=coerced,
        pipeline_root=root,
        enable_caching=enable_caching,
        service_account=service_account or "",
        state=RuntimeState.PENDING,
        state_history=[state_entry(RuntimeState.PENDING, at=now)],
        recurring_run=recurring_run,
        scheduled_at=scheduled_at or now,
        cloned_from=cloned_from,
        rerun_of=rerun_of,
        rerun_of_task_key=rerun_of_task_key if rerun_of is not None else "",
        created_by=created_by if actor_is_system(actor) else actor_user(actor),
    )
    try:
        with transaction.atomic():
            # The experiment row first: inserting the run takes a shared lock on it (the
            # foreign key), so updating it after the insert lets two concurrent creates
            # (two schedulers, two API calls) each hold the shared lock and deadlock
            # waiting for the exclusive one. Exclusive first, and they simply queue.
            Experiment.objects.filter(pk=experiment.pk).update(last_run_created_at=now)
            run.save(force_insert=True)
            dispatch.run_advance_later(run.pk)
    except IntegrityError as exc:
        raise Conflict("this run already exists (a schedule instant fires once)") from exc
    return run


@transaction.atomic
def run_terminate(*, actor: Actor, run: Run) -> Run:
    """Stop an active run: it goes CANCELING, queued steps are canceled at once, and
    running steps are killed by their workers (their next heartbeat sees it); the
    run is CANCELED when nothing is left running."""
    namespace_authorize(actor=actor, namespace=run.namespace, action=Action.RUN_TERMINATE)
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.state in RuntimeState.terminal():
        raise FailedPrecondition(f"run is already {run.state}; there is nothing to terminate")
    if run.state == RuntimeState.CANCELING:
        return run
    set_run_state(run, RuntimeState.CANCELING)
    run.save(update_fields=["state", "state_history", "finished_at", "error"])
    run_executor_for(run).terminate(run)
    dispatch.run_advance_later(run.pk)
    return run


@transaction.atomic
def run_retry(*, actor: Actor, run: Run) -> Run:
    """Re-run a failed or canceled run's failed, skipped and canceled steps; keep the ones
    that succeeded (and their outputs)."""
    namespace_authorize(actor=actor, namespace=run.namespace, action=Action.RUN_RETRY)
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.state not in (RuntimeState.FAILED, RuntimeState.CANCELED):
        raise FailedPrecondition(f"only failed or canceled runs can be retried; this run is {run.state}")
    run_executor_for(run).retry(run)
    set_run_state(run, RuntimeState.RUNNING)
    run.save(update_fields=["state", "state_history", "finished_at", "error", "started_at"])
    dispatch.run_advance_later(run.pk)
    return run


def run_clone(*, actor: Actor, run: Run, display_name: str | None = None) -> Run:
    """Start a new run with the same pipeline, parameters and settings (run_create checks the role)."""
    return run_create(
        actor=actor,
        namespace=run.namespace,
        display_name=display_name or f"Clone of {run.display_name}"[:MAX_NAME],
        experiment=run.experiment if run.experiment.storage_state == StorageState.AVAILABLE else None,
        pipeline_version=run.pipeline_version,
        pipeline_spec=None if run.pipeline_version_id else run.pipeline_spec,
        platform_spec=None if run.pipeline_version_id else run.platform_spec,
        description=run.description,
        parameters=run.runtime_parameters,
        pipeline_root=run.pipeline_root,
        enable_caching=run.enable_caching,
        service_account=run.service_account,
        cloned_from=run,
        executor=run.executor,
    )


def run_archive(*, actor: Actor, run: Run) -> None:
    """Hide a run from the active list (it keeps running if it is running)."""
    namespace_authorize(actor=actor, namespace=run.namespace, action=Action.RUN_ARCHIVE)
    Run.objects.filter(pk=run.pk).update(storage_state=StorageState.ARCHIVED)
    run.storage_state = StorageState.ARCHIVED


def run_unarchive(*, actor: Actor, run: Run) -> None:
    """Bring an archived run back to the active list."""
    namespace_authorize(actor=actor, namespace=run.namespace, action=Action.RUN_ARCHIVE)
    Run.objects.filter(pk=run.pk).update(storage_state=StorageState.AVAILABLE)
    run.storage_state = StorageState.AVAILABLE


@transaction.atomic
def run_delete(*, actor: Actor, run: Run) -> None:
    """Delete a run and its tasks and artifact records. An active run is refused:
    terminate it first (so no worker is writing to it)."""
    namespace_authorize(actor=actor, namespace=run.namespace, action=Action.RUN_DELETE)
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.state in RuntimeState.active():
        raise FailedPrecondition(f"run is {run.state}; terminate it before deleting it")
    run.delete()
