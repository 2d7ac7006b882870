"""Write-side operations for recurring runs, and the scheduler's tick.

Policies (see also README "Recurring runs"):

- **Run identity.** A firing's run id is ``uuid5(recurring_run.id, instant.isoformat())``
  (the instant in UTC) and Run has a unique (recurring_run, scheduled_at)
  constraint, so an instant fires once however many schedulers run; a duplicate
  (``Conflict``) counts as already fired.
- **Claims.** Each due schedule is claimed with ``SELECT … FOR UPDATE SKIP LOCKED``
  where the database has it (MariaDB ≥ 10.6, MySQL 8, PostgreSQL), else a plain
  row lock (SQLite: writers are serialised anyway). Its runs are created and its
  ``next_fire_time`` advanced in that one short transaction.
- **Catch-up.** With ``no_catchup`` off, missed instants are backfilled oldest
  first, at most ``MAX_CATCHUP`` (100) of them: if more were missed, only the most
  recent 100 run. With ``no_catchup`` on, only the most recent missed instant runs.
- **Concurrency.** Active runs (pending, running, canceling, paused) count against
  ``max_concurrency``. At the cap nothing is created and the instant is *not*
  skipped: it fires as soon as a slot frees (KFP behaves the same way: its
  controller keeps the next trigger time until a workflow finishes).
- **Disable / enable.** A disabled schedule creates nothing. Enabling it again
  starts from the next instant after now, unless the caller passes
  ``catch_up=True`` and the schedule's ``no_catchup`` is off: then the instants
  missed since its last firing are backfilled (within the bound above).
- **Roles.** Every service takes the acting user (``actor=``) and checks its role
  in the schedule's namespace first: editors create, clone, enable and disable,
  owners delete. The scheduler's firing acts as ``SCHEDULER`` (a system actor):
  the author's role was checked when the schedule was created or last enabled,
  and its runs record the schedule's author as theirs.
- **Failures.** A firing that cannot start (the pipeline has no version any more,
  parameters no longer fit the latest version) is recorded in ``error`` and the
  instant is passed over; unexpected errors roll back and are retried next tick.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone as djtz

from apps.core.authz import SCHEDULER, Action, Actor, actor_user, namespace_authorize
from apps.core.choices import (
    RecurringRunMode,
    RecurringRunStatus,
    StorageState,
    TriggerType,
)
from apps.core.db import retry_on_conflict
from apps.core.exceptions import Conflict, FailedPrecondition, InvalidInput, ServiceError
from apps.core.models import Namespace
from apps.core.timefmt import format_instant
from apps.engine.runtime_params import ParameterError, coerce_runtime_parameters
from apps.experiments.models import Experiment
from apps.experiments.services import experiment_for_new_runs
from apps.pipelines.models import Pipeline, PipelineVersion
from apps.pipelines.selectors import pipeline_version_latest
from apps.runs.services import run_create
from apps.runs.services.executors import executor_check, executor_choose
from apps.runs.services.lifecycle import argo_runnable_check, inline_spec_import
from apps.runs.services.storage import importer_uris_check, pipeline_root_check
from apps.schedules.macros import format_macros, format_value, go_time_format, has_macros
from apps.schedules.models import RecurringRun
from apps.schedules.selectors import recurring_run_active_count, recurring_run_trigger, trigger_validate

logger = logging.getLogger("canal.scheduler")

MAX_NAME = 255
#: Catch-up bound: at most this many missed instants are backfilled (the most recent).
MAX_CATCHUP = 100
#: ``max_concurrency`` accepts 1..MAX_CONCURRENCY.
MAX_CONCURRENCY = 100
#: Due schedules looked at per tick (the rest wait for the next tick).
TICK_BATCH = 500
#: Run names without a macro get the scheduled time appended in this Go layout.
RUN_NAME_TIME_LAYOUT = "2006-01-02 15:04:05 MST"
#: The keyword arguments of recurring_run_create that describe the trigger and policy.
TRIGGER_FIELDS = (
    "trigger_type",
    "cron",
    "interval_second",
    "start_time",
    "end_time",
    "timezone",
    "max_concurrency",
    "no_catchup",
    "enabled",
)


def _check_name(display_name: str) -> str:
    name = (display_name or "").strip()
    if not name:
        raise InvalidInput("display_name is required", field="display_name")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"display_name is longer than {MAX_NAME} characters", field="display_name")
    return name


def _check_concurrency(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidInput("max_concurrency must be a whole number", field="max_concurrency")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput("max_concurrency must be a whole number", field="max_concurrency") from None
    if not 1 <= number <= MAX_CONCURRENCY:
        raise InvalidInput(
            f"max_concurrency must be between 1 and {MAX_CONCURRENCY}", field="max_concurrency"
        )
    return number


@dataclass(frozen=True)
class _Source:
    """What a recurring run starts: a pinned version, a pipeline (its newest version at
    each firing) or an inline spec; ``check_spec`` and ``check_format`` are what is
    validated now (the newest version's, for a pipeline), and ``field`` names where
    they came from."""

    pipeline: Pipeline | None
    version: PipelineVersion | None
    spec: dict[str, Any] | None
    platform: dict[str, Any] | None
    check_spec: dict[str, Any]
    check_format: str
    field: str


def _resolve_source(
    *,
    pipeline: Pipeline | None,
    pipeline_version: PipelineVersion | None,
    pipeline_spec: dict[str, Any] | None,
    platform_spec: dict[str, Any] | None,
) -> _Source:
    if pipeline_spec is not None and (pipeline_version is not None or pipeline is not None):
        raise InvalidInput(
            "give either a pipeline (or one of its versions) or an inline pipeline spec, not both",
            field="pipeline_spec",
        )
    if pipeline_version is not None:
        if pipeline is not None and pipeline_version.pipeline_id != pipeline.pk:
            raise InvalidInput("the pipeline version belongs to another pipeline", field="pipeline_version")
        return _Source(
            pipeline_version.pipeline,
            pipeline_version,
            None,
            None,
            pipeline_version.pipeline_spec,
            pipeline_version.format,
            "pipeline_version",
        )
    if pipeline is not None:
        latest = pipeline_version_latest(pipeline=pipeline)
        if latest is None:
            raise InvalidInput(f"pipeline {pipeline.display_name!r} has no versions", field="pipeline")
        return _Source(pipeline, None, None, None, latest.pipeline_spec, latest.format, "pipeline")
    if pipeline_spec is None:
        raise InvalidInput(
            "give a pipeline version, a pipeline (its latest version runs each time), or an inline spec",
            field="pipeline_spec",
        )
    # KFP IR or an Argo Workflow, as for a run (each firing's run_create tells them apart).
    spec, platform, spec_format = inline_spec_import(pipeline_spec, platform_spec)
    return _Source(None, None, spec, platform, spec, spec_format, "pipeline_spec")


def _check_runnable(source: _Source, *, experiment: Experiment, parameters: dict[str, Any]) -> None:
    """Refuse now, not at every firing, what the firings' executor (the experiment's, as
    for run_create) could not start: an executor that is not configured, an Argo
    Workflow the local interpreter cannot run or the cluster would not be asked for.
    Parameters holding macros are checked with the values they would have now."""
    executor = executor_choose(experiment=experiment)
    executor_check(executor=executor, spec_format=source.check_format)
    now = djtz.now()
    argo_runnable_check(
        spec_format=source.check_format,
        spec=source.check_spec,
        executor=executor,
        parameters=format_value(parameters, scheduled=now, current=now, run_uuid=str(uuid.uuid4()), index=1),
        field=source.field,
    )


def _check_parameters(spec: dict[str, Any], parameters: dict[str, Any] | None) -> dict[str, Any]:
    try:
        return coerce_runtime_parameters(spec, parameters)
    except ParameterError as exc:
        name = next(iter(exc.errors))
        raise InvalidInput(f"invalid parameters: {exc}", field=f"parameters.{name}") from exc


def _check_root(pipeline_root: str) -> str:
    # Empty: each firing decides (the IR's default root when it is allowed, else Canal's).
    root = (pipeline_root or "").strip()
    return pipeline_root_check(pipeline_root=root) if root else ""


def recurring_run_create(
    *,
    actor: Actor,
    namespace: Namespace,
    display_name: str,
    experiment: Experiment | None = None,
    pipeline: Pipeline | None = None,
    pipeline_version: PipelineVersion | None = None,
    pipeline_spec: dict[str, Any] | None = None,
    platform_spec: dict[str, Any] | None = None,
    description: str = "",
    parameters: dict[str, Any] | None = None,
    pipeline_root: str = "",
    service_account: str = "",
    trigger_type: str,
    cron: str = "",
    interval_second: int | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    timezone: str = "UTC",
    max_concurrency: int = 1,
    no_catchup: bool = False,
    enabled: bool = True,
) -> RecurringRun:
    """Validate everything and create a schedule.

    The pipeline is a pinned ``pipeline_version``, or a ``pipeline`` alone (each
    firing runs its newest version at that moment), or an inline ``pipeline_spec``.
    String parameters may hold macros (``[[ScheduledTime]]``, …), substituted at
    each firing. Raises InvalidInput with ``field`` set (display_name, trigger_type,
    cron, interval_second, start_time, end_time, timezone, max_concurrency,
    pipeline, pipeline_version, pipeline_spec, parameters.<name>, pipeline_root,
    experiment), FailedPrecondition (archived experiment), PermissionDenied or NotFound
    (the actor is not an editor of ``namespace``, or cannot see the pipeline).
    """
    namespace_authorize(actor=actor, namespace=namespace, action=Action.RECURRING_RUN_CREATE)
    source = pipeline if pipeline is not None else (pipeline_version.pipeline if pipeline_version else None)
    if source is not None and source.namespace_id != namespace.pk:
        namespace_authorize(actor=actor, namespace=source.namespace, action=Action.VIEW)
    name = _check_name(display_name)
    kind = str(trigger_type or "")
    trigger_validate(
        trigger_type=kind,
        cron=cron,
        interval_second=interval_second,
        start_time=start_time,
        end_time=end_time,
        timezone=timezone,
    )
    if end_time is not None and end_time <= djtz.now():
        # KFP accepts it and the schedule never fires; say so instead.
        raise InvalidInput(
            f"the end time {format_instant(end_time, timezone)} has passed: "
            "the recurring run would never fire",
            field="end_time",
        )
    concurrency = _check_concurrency(max_concurrency)
    origin = _resolve_source(
        pipeline=pipeline,
        pipeline_version=pipeline_version,
        pipeline_spec=pipeline_spec,
        platform_spec=platform_spec,
    )
    pipeline, version, spec, platform = origin.pipeline, origin.version, origin.spec, origin.platform
    params = _check_parameters(origin.check_spec, parameters)
    root = _check_root(pipeline_root)
    # Importer URIs known now are checked now; ones built from macros are checked at each firing.
    importer_uris_check(
        namespace=namespace,
        spec=origin.check_spec,
        platform_spec=platform,
        parameters={k: v for k, v in params.items() if not (isinstance(v, str) and has_macros(v))},
    )
    experiment = experiment_for_new_runs(namespace=namespace, experiment=experiment)
    _check_runnable(origin, experiment=experiment, parameters=params)
    with transaction.atomic():
        rr = RecurringRun.objects.create(
            namespace=namespace,
            experiment=experiment,
            display_name=name,
            description=description or "",
            pipeline=pipeline,
            pipeline_version=version,
            pipeline_spec=spec,
            platform_spec=platform,
            runtime_parameters=params,
            pipeline_root=root,
            service_account=service_account or "",
            trigger_type=kind,
            cron=" ".join((cron or "").split()) if kind == TriggerType.CRON else "",
            interval_second=int(interval_second)
            if kind == TriggerType.PERIODIC and interval_second
            else None,
            start_time=start_time,
            end_time=end_time,
            timezone=(timezone or "UTC").strip(),
            max_concurrency=concurrency,
            no_catchup=bool(no_catchup),
            mode=RecurringRunMode.ENABLE if enabled else RecurringRunMode.DISABLE,
            status=RecurringRunStatus.ENABLED if enabled else RecurringRunStatus.DISABLED,
            created_by=actor_user(actor),
        )
        if enabled:
            # Periodic schedules without a start count from creation: use the stored time.
            now = djtz.now()
            rr.enabled_at = now
            rr.next_fire_time = recurring_run_trigger(recurring_run=rr).next_after(now)
            rr.save(update_fields=["enabled_at", "next_fire_time"])
    return rr


def _locked(recurring_run: RecurringRun) -> RecurringRun:
    return RecurringRun.objects.select_for_update().get(pk=recurring_run.pk)


def _refresh(target: RecurringRun, source: RecurringRun) -> RecurringRun:
    for name in ("mode", "status", "enabled_at", "next_fire_time", "error", "updated_at"):
        setattr(target, name, getattr(source, name))
    return target


def recurring_run_enable(
    *, actor: Actor, recurring_run: RecurringRun, catch_up: bool = False, now: datetime | None = None
) -> RecurringRun:
    """Enable a schedule. It fires from the next instant after now; the disabled
    period is backfilled only if ``catch_up`` is True *and* the schedule's
    ``no_catchup`` is off (from its last firing, or its start if it never fired,
    within the catch-up bound). Enabling an enabled schedule changes nothing."""
    namespace_authorize(actor=actor, namespace=recurring_run.namespace, action=Action.RECURRING_RUN_ENABLE)
    now = now or djtz.now()
    with transaction.atomic():
        rr = _locked(recurring_run)
        if rr.mode == RecurringRunMode.ENABLE:
            return _refresh(recurring_run, rr)
        experiment = Experiment.objects.get(pk=rr.experiment_id)
        if experiment.storage_state == StorageState.ARCHIVED:
            raise FailedPrecondition(
                f"experiment {experiment.display_name!r} is archived; "
                "restore it before enabling its schedules"
            )
        trigger = recurring_run_trigger(recurring_run=rr)
        if catch_up and not rr.no_catchup:
            since = rr.last_fire_time or (rr.created_at - timedelta(microseconds=1))
            rr.next_fire_time = trigger.next_after(since)
        else:
            rr.next_fire_time = trigger.next_after(now)
        rr.mode = RecurringRunMode.ENABLE
        rr.status = RecurringRunStatus.ENABLED
        rr.enabled_at = now
        rr.error = ""
        rr.save(update_fields=["mode", "status", "enabled_at", "next_fire_time", "error", "updated_at"])
    return _refresh(recurring_run, rr)


def recurring_run_disable(*, actor: Actor, recurring_run: RecurringRun) -> RecurringRun:
    """Disable a schedule: it creates no runs until enabled again. Its active runs go on."""
    namespace_authorize(actor=actor, namespace=recurring_run.namespace, action=Action.RECURRING_RUN_ENABLE)
    with transaction.atomic():
        rr = _locked(recurring_run)
        if rr.mode != RecurringRunMode.DISABLE or rr.next_fire_time is not None:
            rr.mode = RecurringRunMode.DISABLE
            rr.status = RecurringRunStatus.DISABLED
            rr.next_fire_time = None
            rr.save(update_fields=["mode", "status", "next_fire_time", "updated_at"])
    return _refresh(recurring_run, rr)


def recurring_run_delete(*, actor: Actor, recurring_run: RecurringRun) -> None:
    """Delete a schedule. The runs it started stay (they no longer point to it)."""
    namespace_authorize(actor=actor, namespace=recurring_run.namespace, action=Action.RECURRING_RUN_DELETE)
    with transaction.atomic():
        _locked(recurring_run).delete()


def recurring_run_clone(
    *,
    actor: Actor,
    recurring_run: RecurringRun,
    display_name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    **trigger: Any,
) -> RecurringRun:
    """A new schedule with the same pipeline, parameters, trigger and policy. Any of
    ``TRIGGER_FIELDS`` (and the name, description, parameters) can be overridden;
    the copy is named "Copy of …" unless a name is given (recurring_run_create checks the role)."""
    unknown = set(trigger) - set(TRIGGER_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    source = recurring_run
    settings_: dict[str, Any] = {
        "trigger_type": source.trigger_type,
        "cron": source.cron,
        "interval_second": source.interval_second,
        "start_time": source.start_time,
        "end_time": source.end_time,
        "timezone": source.timezone,
        "max_concurrency": source.max_concurrency,
        "no_catchup": source.no_catchup,
        "enabled": source.mode == RecurringRunMode.ENABLE,
    }
    settings_.update(trigger)
    experiment = source.experiment
    return recurring_run_create(
        actor=actor,
        namespace=source.namespace,
        display_name=display_name or f"Copy of {source.display_name}"[:MAX_NAME],
        experiment=experiment if experiment.storage_state == StorageState.AVAILABLE else None,
        pipeline=source.pipeline if source.pipeline_version_id is None else None,
        pipeline_version=source.pipeline_version,
        pipeline_spec=source.pipeline_spec if source.pipeline_id is None else None,
        platform_spec=source.platform_spec if source.pipeline_id is None else None,
        description=source.description if description is None else description,
        parameters=source.runtime_parameters if parameters is None else parameters,
        pipeline_root=source.pipeline_root,
        service_account=source.service_account,
        **settings_,
    )


# --- the scheduler's tick ------------------------------------------------------------


@dataclass
class TickReport:
    """What one tick did (for logs and tests)."""

    claimed: list[str] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def _claim(pk: Any, now: datetime) -> RecurringRun | None:
    qs = RecurringRun.objects.filter(pk=pk, mode=RecurringRunMode.ENABLE, next_fire_time__lte=now)
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True)
    else:
        qs = qs.select_for_update()
    return qs.first()


def run_id_for(recurring_run_id: uuid.UUID, instant: datetime) -> uuid.UUID:
    """The deterministic id of the run a schedule starts for ``instant``."""
    return uuid.uuid5(recurring_run_id, instant.astimezone(UTC).isoformat())


def _fire(rr: RecurringRun, instant: datetime, now: datetime, tz: tzinfo, report: TickReport) -> None:
    """Start the run for one instant (inside the claim's transaction)."""
    run_id = run_id_for(rr.pk, instant)
    context: dict[str, Any] = {
        "scheduled": instant,
        "current": now,
        "run_uuid": str(run_id),
        "index": rr.fired_count + 1,
        "tz": tz,
    }
    if has_macros(rr.display_name):
        name = format_macros(rr.display_name, **context)
    else:
        name = f"{rr.display_name} {go_time_format(instant.astimezone(tz), RUN_NAME_TIME_LAYOUT)}"
    name = name.strip()[:MAX_NAME] or rr.display_name
    version = rr.pipeline_version
    try:
        if version is None and rr.pipeline is not None:
            version = pipeline_version_latest(pipeline=rr.pipeline)
            if version is None:
                raise InvalidInput(f"pipeline {rr.pipeline.display_name!r} has no versions left")
        run = run_create(
            actor=SCHEDULER,
            created_by=rr.created_by,
            namespace=rr.namespace,
            display_name=name,
            experiment=rr.experiment,
            pipeline_version=version,
            pipeline_spec=None if version is not None else rr.pipeline_spec,
            platform_spec=None if version is not None else rr.platform_spec,
            description=rr.description,
            parameters=format_value(rr.runtime_parameters, **context),
            pipeline_root=rr.pipeline_root,
            service_account=rr.service_account,
            recurring_run=rr,
            scheduled_at=instant,
            run_id=run_id,
        )
    except Conflict:
        # Another scheduler (or an earlier, interrupted tick) already fired it.
        report.duplicates.append(str(run_id))
    except ServiceError as exc:
        when = go_time_format(instant.astimezone(tz), RUN_NAME_TIME_LAYOUT)
        rr.error = f"the run scheduled for {when} could not start: {exc.message}"
        report.errors[str(rr.pk)] = rr.error
        logger.warning("recurring run %s: %s", rr.pk, rr.error)
    else:
        rr.fired_count += 1
        rr.error = ""
        report.fired.append(str(run.pk))
    if rr.last_fire_time is None or instant > rr.last_fire_time:
        rr.last_fire_time = instant


def _process(pk: Any, now: datetime, report: TickReport) -> None:
    with transaction.atomic():
        rr = _claim(pk, now)
        if rr is None:  # another scheduler holds it, or it is no longer due
            return
        report.claimed.append(str(rr.pk))
        slots = max(0, rr.max_concurrency - recurring_run_active_count(recurring_run=rr))
        if slots == 0:
            # At the concurrency cap: keep the instant, it fires when a slot frees.
            report.blocked.append(str(rr.pk))
            return
        trigger = recurring_run_trigger(recurring_run=rr)
        assert rr.next_fire_time is not None
        due, dropped = trigger.latest(rr.next_fire_time, now, 1 if rr.no_catchup else MAX_CATCHUP)
        if dropped and not rr.no_catchup:
            logger.warning(
                "recurring run %s missed more than %d instants; backfilling the most recent %d",
                rr.pk,
                MAX_CATCHUP,
                MAX_CATCHUP,
            )
        firing = due[:slots]
        for instant in firing:
            _fire(rr, instant, now, trigger.tz, report)
        if len(firing) < len(due):
            # The cap was reached part-way: the next unfired instant waits for a slot.
            rr.next_fire_time = due[len(firing)]
            report.blocked.append(str(rr.pk))
        else:
            rr.next_fire_time = trigger.next_after(due[-1] if due else now)
        rr.save(update_fields=["next_fire_time", "last_fire_time", "fired_count", "error"])


def schedules_tick(*, now: datetime | None = None, limit: int = TICK_BATCH) -> TickReport:
    """Fire every due schedule: create its runs through ``run_create`` and advance
    it. Safe to run in several processes at once (see the module docstring)."""
    now = now or djtz.now()
    report = TickReport()
    due = list(
        RecurringRun.objects.filter(
            mode=RecurringRunMode.ENABLE, next_fire_time__isnull=False, next_fire_time__lte=now
        )
        .order_by("next_fire_time")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        try:
            retry_on_conflict(partial(_process, pk, now, report), what=f"recurring run {pk}")
        except Exception as exc:  # one broken schedule must not stop the others
            logger.exception("recurring run %s: tick failed", pk)
            report.errors[str(pk)] = str(exc)
    if report.fired:
        logger.info("fired %d run(s) for %d schedule(s)", len(report.fired), len(report.claimed))
    return report
