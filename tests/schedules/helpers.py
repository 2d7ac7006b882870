"""Shared helpers for the recurring-run tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine

from apps.core.choices import RuntimeState
from apps.runs.models import Run
from apps.schedules.models import RecurringRun
from apps.schedules.services import TickReport, schedules_tick
from tests.factories import PipelineVersionFactory
from tests.paths import KFP_VALID

IDENTITY_TEXT = (KFP_VALID / "identity.yaml").read_text()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def identity_version(**kwargs: Any) -> Any:
    """A pipeline version whose root takes one required STRING parameter, ``value``."""
    return PipelineVersionFactory(source=IDENTITY_TEXT, **kwargs)


def tick_at(moment: datetime) -> TickReport:
    """One scheduler tick with the clock at ``moment`` (time-machine travels there)."""
    with time_machine.travel(moment, tick=False):
        return schedules_tick()


def drive(start: datetime, end: datetime, step: timedelta, on_tick: Any = None) -> Iterator[TickReport]:
    """Tick every ``step`` from ``start`` to ``end`` inclusive, as the scheduler loop would."""
    moment = start
    while moment <= end:
        report = tick_at(moment)
        if on_tick is not None:
            on_tick(moment, report)
        yield report
        moment += step


def run_times(rr: RecurringRun) -> list[datetime]:
    """The instants a schedule's runs were scheduled for, in order."""
    return list(
        Run.objects.filter(recurring_run=rr).order_by("scheduled_at").values_list("scheduled_at", flat=True)
    )


def active_runs(rr: RecurringRun) -> int:
    return Run.objects.filter(recurring_run=rr, state__in=RuntimeState.active()).count()
