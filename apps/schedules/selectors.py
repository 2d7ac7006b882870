"""Read-side queries for recurring runs, scoped to the user's namespaces, and the
fire-time previews the forms and pages show."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone as djtz

from apps.core.choices import RecurringRunMode, RuntimeState, TriggerType
from apps.core.exceptions import InvalidInput, NotFound
from apps.core.models import Namespace
from apps.core.selectors import namespace_list_for_user
from apps.experiments.models import Experiment
from apps.runs.models import Run
from apps.schedules.filters import RecurringRunFilterSet, RecurringRunSortSet
from apps.schedules.models import RecurringRun
from apps.schedules.triggers import Trigger, TriggerError, build_trigger

#: A preview never lists more than this many instants.
MAX_PREVIEW = 50


def recurring_run_list(
    *, user: Any, namespace: Namespace | None = None, experiment: Experiment | None = None
) -> QuerySet[RecurringRun]:
    """Recurring runs the user may see (in one namespace and/or experiment if given),
    newest first, with what list pages show joined in."""
    qs = RecurringRun.objects.filter(namespace__in=namespace_list_for_user(user=user))
    if namespace is not None:
        qs = qs.filter(namespace=namespace)
    if experiment is not None:
        qs = qs.filter(experiment=experiment)
    return qs.select_related("namespace", "experiment", "pipeline", "pipeline_version").defer(
        "pipeline_spec", "platform_spec"
    )


def recurring_run_filter(
    *,
    user: Any,
    namespace: Namespace | None = None,
    experiment: Experiment | None = None,
    params: Any,
    request: Any = None,
    search: bool = True,
) -> RecurringRunFilterSet:
    """recurring_run_list filtered (``q``, unless ``search`` is off) and sorted (``sort``)
    by the request parameters ``params``; ``.qs`` is the queryset."""
    filterset = RecurringRunFilterSet if search else RecurringRunSortSet
    qs = recurring_run_list(user=user, namespace=namespace, experiment=experiment)
    return filterset(params, qs, request=request)


def recurring_run_get(*, user: Any, recurring_run_id: Any) -> RecurringRun:
    """One recurring run the user may see, or NotFound (the same answer for both)."""
    try:
        rid = (
            recurring_run_id if isinstance(recurring_run_id, uuid.UUID) else uuid.UUID(str(recurring_run_id))
        )
    except ValueError:
        raise NotFound(f"recurring run {recurring_run_id} not found") from None
    try:
        return RecurringRun.objects.select_related(
            "namespace", "experiment", "pipeline", "pipeline_version", "created_by"
        ).get(pk=rid, namespace__in=namespace_list_for_user(user=user))
    except RecurringRun.DoesNotExist:
        raise NotFound(f"recurring run {recurring_run_id} not found") from None


def recurring_run_get_unscoped(*, recurring_run_id: Any) -> RecurringRun:
    """A recurring run by id, for trusted callers (the scheduler, management commands)."""
    try:
        return RecurringRun.objects.get(pk=recurring_run_id)
    except (RecurringRun.DoesNotExist, ValueError):
        raise NotFound(f"recurring run {recurring_run_id} not found") from None


def trigger_validate(
    *,
    trigger_type: str,
    cron: str = "",
    interval_second: Any = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    timezone: str = "UTC",
    anchor: datetime | None = None,
) -> Trigger:
    """Build a trigger from its parts, or raise InvalidInput naming the bad field
    (``trigger_type``, ``cron``, ``interval_second``, ``start_time``, ``end_time``,
    ``timezone``)."""
    try:
        return build_trigger(
            trigger_type=trigger_type,
            cron=cron or "",
            interval_second=interval_second,
            start_time=start_time,
            end_time=end_time,
            timezone=timezone or "UTC",
            anchor=anchor,
        )
    except TriggerError as exc:
        raise InvalidInput(exc.message, field=exc.field) from exc


def recurring_run_trigger(*, recurring_run: RecurringRun) -> Trigger:
    """The schedule's trigger (periodic schedules without a start count from creation)."""
    return trigger_validate(
        trigger_type=recurring_run.trigger_type,
        cron=recurring_run.cron,
        interval_second=recurring_run.interval_second,
        start_time=recurring_run.start_time,
        end_time=recurring_run.end_time,
        timezone=recurring_run.timezone,
        anchor=recurring_run.created_at,
    )


def recurring_run_next_fire_times(
    *, recurring_run: RecurringRun, count: int = 5, now: datetime | None = None
) -> list[datetime]:
    """The next ``count`` instants the schedule will fire at, in its timezone. The
    first may be in the past if it is overdue (waiting for a concurrency slot).
    Empty when the schedule is disabled or has ended."""
    if recurring_run.mode != RecurringRunMode.ENABLE or recurring_run.next_fire_time is None:
        return []
    count = max(0, min(count, MAX_PREVIEW))
    if count == 0:
        return []
    trigger = recurring_run_trigger(recurring_run=recurring_run)
    first = recurring_run.next_fire_time
    times = [first, *trigger.upcoming(max(first, now or djtz.now()), count - 1)]
    return [t.astimezone(trigger.tz) for t in times[:count]]


def trigger_preview(
    *,
    trigger_type: str,
    cron: str = "",
    interval_second: Any = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    timezone: str = "UTC",
    count: int = 5,
    now: datetime | None = None,
) -> list[datetime]:
    """The first ``count`` fire times of a trigger that would be created now, in its
    timezone. Raises InvalidInput for a bad trigger."""
    now = now or djtz.now()
    trigger = trigger_validate(
        trigger_type=trigger_type,
        cron=cron,
        interval_second=interval_second,
        start_time=start_time,
        end_time=end_time,
        timezone=timezone,
        anchor=now,
    )
    return [t.astimezone(trigger.tz) for t in trigger.upcoming(now, max(0, min(count, MAX_PREVIEW)))]


_UNITS = ((604800, "week"), (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def interval_text(seconds: int) -> str:
    """3600 → "every hour", 5400 → "every 90 minutes"."""
    for length, unit in _UNITS:
        if seconds % length == 0:
            count = seconds // length
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds} seconds"


def recurring_run_describe(*, recurring_run: RecurringRun) -> str:
    """The trigger in words: "cron 0 9 * * * (Europe/Paris)", "every 2 hours"."""
    if recurring_run.trigger_type == TriggerType.CRON:
        return f"cron {recurring_run.cron} ({recurring_run.timezone})"
    return interval_text(int(recurring_run.interval_second or 0) or 1)


def recurring_run_runs(*, recurring_run: RecurringRun) -> QuerySet[Run]:
    """The runs the schedule started, most recently scheduled first (its history)."""
    return (
        Run.objects.filter(recurring_run=recurring_run)
        .select_related("pipeline_version", "experiment")
        .defer("pipeline_spec", "platform_spec")
        .order_by("-scheduled_at", "-created_at")
    )


def recurring_run_active_count(*, recurring_run: RecurringRun) -> int:
    """How many of the schedule's runs are still active (they count against max_concurrency)."""
    return Run.objects.filter(recurring_run=recurring_run, state__in=RuntimeState.active()).count()
