"""The scheduler tick under time-machine: the acceptance checks of issue 6.

Runs are never executed here (no worker): a created run stays PENDING unless the
test moves it on, which is how "slow runs" are simulated.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from apps.core.authz import OPERATOR
from apps.core.choices import RecurringRunMode, RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.models import Run
from apps.schedules.models import RecurringRun
from apps.schedules.services import (
    MAX_CATCHUP,
    recurring_run_create,
    recurring_run_disable,
    recurring_run_enable,
    run_id_for,
)
from tests.factories import PipelineVersionFactory
from tests.schedules.helpers import active_runs, drive, run_times, tick_at, utc

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")


def create(at, **kwargs):  # type: ignore[no-untyped-def]
    """A schedule created with the clock at ``at``."""
    kwargs.setdefault("pipeline_version", PipelineVersionFactory())
    kwargs.setdefault("display_name", "sched")
    with time_machine.travel(at, tick=False):
        return recurring_run_create(namespace=namespace_ensure(actor=OPERATOR), actor=OPERATOR, **kwargs)


def local(instants, tz=PARIS):  # type: ignore[no-untyped-def]
    return [i.astimezone(tz).strftime("%m-%d %H:%M %Z") for i in instants]


# --- DST, in a non-UTC timezone ------------------------------------------------------


def test_cron_fires_at_nine_local_time_across_spring_forward_and_fall_back() -> None:
    rr = create(
        utc(2026, 3, 27, 12),
        trigger_type="CRON",
        cron="0 9 * * *",
        timezone="Europe/Paris",
        max_concurrency=50,
    )
    list(drive(utc(2026, 3, 27, 12), utc(2026, 3, 31, 12), timedelta(minutes=40)))
    assert local(run_times(rr)) == [
        "03-28 09:00 CET",
        "03-29 09:00 CEST",
        "03-30 09:00 CEST",
        "03-31 09:00 CEST",
    ]
    assert [t.hour for t in run_times(rr)] == [8, 7, 7, 7]  # UTC
    recurring_run_disable(actor=OPERATOR, recurring_run=rr)

    rr_fall = create(
        utc(2026, 10, 23, 12),
        trigger_type="CRON",
        cron="0 9 * * *",
        timezone="Europe/Paris",
        max_concurrency=50,
    )
    list(drive(utc(2026, 10, 23, 12), utc(2026, 10, 27, 12), timedelta(minutes=40)))
    assert local(run_times(rr_fall)) == [
        "10-24 09:00 CEST",
        "10-25 09:00 CET",
        "10-26 09:00 CET",
        "10-27 09:00 CET",
    ]
    # Run names carry the scheduled time in the schedule's timezone.
    names = list(
        Run.objects.filter(recurring_run=rr_fall)
        .order_by("scheduled_at")
        .values_list("display_name", flat=True)
    )
    assert names[0] == "sched 2026-10-24 09:00:00 CEST" and names[1] == "sched 2026-10-25 09:00:00 CET"


def test_periodic_fires_every_24_hours_absolute_across_spring_forward() -> None:
    start = utc(2026, 3, 27, 8)  # 09:00 CET
    rr = create(
        utc(2026, 3, 27, 6),
        trigger_type="PERIODIC",
        interval_second=86400,
        start_time=start,
        timezone="Europe/Paris",
        max_concurrency=50,
    )
    list(drive(utc(2026, 3, 27, 6), utc(2026, 3, 31, 12), timedelta(minutes=40)))
    times = run_times(rr)
    assert times == [start + timedelta(days=d) for d in (1, 2, 3, 4)]
    assert local(times) == ["03-28 09:00 CET", "03-29 10:00 CEST", "03-30 10:00 CEST", "03-31 10:00 CEST"]


def test_every_minute_cron_across_fall_back_fires_every_real_minute_once() -> None:
    # 02:00-03:00 happens twice in Paris on 2026-10-25; a wildcard-hour schedule
    # fires in both, exactly once per real minute.
    rr = create(
        utc(2026, 10, 24, 23, 30),
        trigger_type="CRON",
        cron="* * * * *",
        timezone="Europe/Paris",
        max_concurrency=100,
    )

    def finish(moment, report):  # type: ignore[no-untyped-def]
        Run.objects.filter(pk__in=report.fired).update(state=RuntimeState.SUCCEEDED)

    list(drive(utc(2026, 10, 24, 23, 30, 20), utc(2026, 10, 25, 2, 0, 20), timedelta(minutes=1), finish))
    times = run_times(rr)
    assert len(times) == 150 and len(set(times)) == 150
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(times))


# --- catch-up after a scheduler outage ------------------------------------------------


@pytest.mark.parametrize(("no_catchup", "after_outage"), [(False, 12), (True, 1)])
def test_catch_up_after_a_one_hour_outage(no_catchup: bool, after_outage: int) -> None:
    rr = create(
        utc(2026, 5, 1, 10),
        trigger_type="CRON",
        cron="*/5 * * * *",
        timezone="UTC",
        max_concurrency=100,
        no_catchup=no_catchup,
    )
    list(drive(utc(2026, 5, 1, 10, 0, 30), utc(2026, 5, 1, 10, 30, 30), timedelta(minutes=1)))
    before = run_times(rr)
    assert before == [utc(2026, 5, 1, 10, m) for m in (5, 10, 15, 20, 25, 30)]
    # The scheduler is down from 10:31 to 11:31: 12 instants (10:35 .. 11:30) are missed.
    report = tick_at(utc(2026, 5, 1, 11, 31, 10))
    new = run_times(rr)[len(before) :]
    assert len(new) == after_outage == len(report.fired)
    if no_catchup:
        assert new == [utc(2026, 5, 1, 11, 30)]
    else:
        assert new == [utc(2026, 5, 1, 10, 35) + timedelta(minutes=5 * i) for i in range(12)]
    # Back to normal afterwards: the next instant fires once, on time.
    tick_at(utc(2026, 5, 1, 11, 35, 5))
    assert run_times(rr)[-1] == utc(2026, 5, 1, 11, 35)
    assert len(run_times(rr)) == len(before) + after_outage + 1


def test_catch_up_is_bounded_to_the_most_recent_instants() -> None:
    rr = create(utc(2026, 5, 1), trigger_type="CRON", cron="* * * * *", timezone="UTC", max_concurrency=100)
    report = tick_at(utc(2026, 5, 1, 5, 0, 30))  # 300 instants missed since creation
    assert len(report.fired) == MAX_CATCHUP
    times = run_times(rr)
    assert times[0] == utc(2026, 5, 1, 3, 21) and times[-1] == utc(2026, 5, 1, 5)
    rr.refresh_from_db()
    assert rr.next_fire_time == utc(2026, 5, 1, 5, 1)


# --- max_concurrency -------------------------------------------------------------------


@pytest.mark.parametrize("no_catchup", [False, True])
def test_max_concurrency_one_with_slow_runs_never_overlaps(no_catchup: bool) -> None:
    rr = create(
        utc(2026, 5, 1, 9, 59, 30),
        trigger_type="CRON",
        cron="* * * * *",
        timezone="UTC",
        max_concurrency=1,
        no_catchup=no_catchup,
    )
    started: dict[str, object] = {}

    def slow_runs(moment, report):  # type: ignore[no-untyped-def]
        # Each run runs for 4 minutes: RUNNING when created, SUCCEEDED 4 minutes later.
        assert active_runs(rr) <= 1
        for run_id in report.fired:
            Run.objects.filter(pk=run_id).update(state=RuntimeState.RUNNING, started_at=moment)
            started[run_id] = moment
        for run in Run.objects.filter(recurring_run=rr, state=RuntimeState.RUNNING):
            if moment - run.started_at >= timedelta(minutes=4):
                Run.objects.filter(pk=run.pk).update(state=RuntimeState.SUCCEEDED, finished_at=moment)

    reports = list(
        drive(utc(2026, 5, 1, 10, 0, 10), utc(2026, 5, 1, 10, 30, 10), timedelta(minutes=1), slow_runs)
    )
    runs = list(Run.objects.filter(recurring_run=rr).order_by("started_at"))
    # Never two at once: each run started after the previous one finished.
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None and later.started_at >= earlier.finished_at
    assert len(runs) == 7  # one every 5 ticks: 4 minutes running, freed on the 5th
    assert any(r.blocked for r in reports)
    times = [r.scheduled_at for r in runs]
    if no_catchup:
        # Only the latest due instant runs when a slot frees; the rest are skipped.
        assert times == [utc(2026, 5, 1, 10, 0) + timedelta(minutes=5 * i) for i in range(7)]
    else:
        # Blocked instants are kept, not skipped: they run in order as slots free.
        assert times == [utc(2026, 5, 1, 10, 0) + timedelta(minutes=i) for i in range(7)]


def test_concurrency_counts_only_active_runs_and_frees_a_slot_per_finished_run() -> None:
    rr = create(utc(2026, 5, 1, 10), trigger_type="PERIODIC", interval_second=60, max_concurrency=2)
    assert len(tick_at(utc(2026, 5, 1, 10, 5, 1)).fired) == 2  # five due, two slots
    assert active_runs(rr) == 2
    assert tick_at(utc(2026, 5, 1, 10, 5, 2)).fired == []
    Run.objects.filter(recurring_run=rr, scheduled_at=utc(2026, 5, 1, 10, 1)).update(
        state=RuntimeState.FAILED
    )
    assert len(tick_at(utc(2026, 5, 1, 10, 5, 3)).fired) == 1
    assert run_times(rr) == [utc(2026, 5, 1, 10, m) for m in (1, 2, 3)]


# --- disabled, re-enabled, ended --------------------------------------------------------


def test_a_disabled_schedule_creates_nothing() -> None:
    rr = create(
        utc(2026, 5, 1, 10), trigger_type="CRON", cron="* * * * *", enabled=False, max_concurrency=100
    )
    assert rr.next_fire_time is None and rr.mode == RecurringRunMode.DISABLE
    reports = list(drive(utc(2026, 5, 1, 10), utc(2026, 5, 1, 12), timedelta(minutes=1)))
    assert not any(r.fired or r.claimed for r in reports)
    assert run_times(rr) == []


def test_disabling_stops_it_and_reenabling_does_not_backfill_the_disabled_period() -> None:
    rr = create(
        utc(2026, 5, 1, 10), trigger_type="CRON", cron="*/10 * * * *", timezone="UTC", max_concurrency=100
    )
    list(drive(utc(2026, 5, 1, 10, 0, 5), utc(2026, 5, 1, 10, 30, 5), timedelta(minutes=1)))
    assert run_times(rr) == [utc(2026, 5, 1, 10, m) for m in (10, 20, 30)]
    with time_machine.travel(utc(2026, 5, 1, 10, 31), tick=False):
        recurring_run_disable(actor=OPERATOR, recurring_run=rr)
    list(drive(utc(2026, 5, 1, 10, 31, 5), utc(2026, 5, 1, 12, 0, 5), timedelta(minutes=1)))
    assert len(run_times(rr)) == 3
    with time_machine.travel(utc(2026, 5, 1, 12, 5), tick=False):
        recurring_run_enable(actor=OPERATOR, recurring_run=rr)
    rr.refresh_from_db()
    assert rr.enabled_at == utc(2026, 5, 1, 12, 5) and rr.next_fire_time == utc(2026, 5, 1, 12, 10)
    list(drive(utc(2026, 5, 1, 12, 5, 5), utc(2026, 5, 1, 12, 20, 5), timedelta(minutes=1)))
    assert run_times(rr)[3:] == [utc(2026, 5, 1, 12, 10), utc(2026, 5, 1, 12, 20)]


def test_reenabling_with_catch_up_backfills_the_disabled_period() -> None:
    rr = create(
        utc(2026, 5, 1, 10), trigger_type="CRON", cron="*/10 * * * *", timezone="UTC", max_concurrency=100
    )
    tick_at(utc(2026, 5, 1, 10, 10, 5))
    recurring_run_disable(actor=OPERATOR, recurring_run=rr)
    with time_machine.travel(utc(2026, 5, 1, 11, 5), tick=False):
        recurring_run_enable(actor=OPERATOR, recurring_run=rr, catch_up=True)
    tick_at(utc(2026, 5, 1, 11, 5, 5))
    assert run_times(rr) == [utc(2026, 5, 1, 10, m) for m in (10, 20, 30, 40, 50)] + [utc(2026, 5, 1, 11)]


def test_catch_up_request_is_ignored_when_the_schedule_has_no_catchup() -> None:
    rr = create(
        utc(2026, 5, 1, 10), trigger_type="CRON", cron="*/10 * * * *", timezone="UTC", no_catchup=True
    )
    recurring_run_disable(actor=OPERATOR, recurring_run=rr)
    with time_machine.travel(utc(2026, 5, 1, 11, 5), tick=False):
        recurring_run_enable(actor=OPERATOR, recurring_run=rr, catch_up=True)
    assert tick_at(utc(2026, 5, 1, 11, 5, 5)).fired == []
    rr.refresh_from_db()
    assert rr.next_fire_time == utc(2026, 5, 1, 11, 10)


def test_an_end_time_stops_it() -> None:
    rr = create(
        utc(2026, 5, 1, 9),
        trigger_type="PERIODIC",
        interval_second=600,
        start_time=utc(2026, 5, 1, 10),
        end_time=utc(2026, 5, 1, 10, 40),
        max_concurrency=100,
    )
    list(drive(utc(2026, 5, 1, 9, 0, 30), utc(2026, 5, 1, 12), timedelta(minutes=1)))
    assert run_times(rr) == [utc(2026, 5, 1, 10, m) for m in (10, 20, 30, 40)]  # the end is inclusive
    rr.refresh_from_db()
    assert rr.next_fire_time is None and rr.last_fire_time == utc(2026, 5, 1, 10, 40)


def test_a_cron_end_time_stops_it_even_after_an_outage() -> None:
    rr = create(
        utc(2026, 5, 1, 9),
        trigger_type="CRON",
        cron="0 * * * *",
        timezone="UTC",
        end_time=utc(2026, 5, 1, 12, 30),
        max_concurrency=100,
    )
    tick_at(utc(2026, 5, 1, 18))
    assert run_times(rr) == [utc(2026, 5, 1, h) for h in (10, 11, 12)]
    assert tick_at(utc(2026, 5, 2, 18)).claimed == []


# --- identity -------------------------------------------------------------------------


def test_run_identity_is_derived_from_the_schedule_and_the_instant() -> None:
    rr = create(utc(2026, 5, 1, 10), trigger_type="PERIODIC", interval_second=60, max_concurrency=10)
    tick_at(utc(2026, 5, 1, 10, 3, 1))
    runs = Run.objects.filter(recurring_run=rr).order_by("scheduled_at")
    assert [r.pk for r in runs] == [run_id_for(rr.pk, utc(2026, 5, 1, 10, m)) for m in (1, 2, 3)]
    assert rr.__class__.objects.get(pk=rr.pk).fired_count == 3


def test_an_instant_that_already_fired_counts_as_fired() -> None:
    rr = create(utc(2026, 5, 1, 10), trigger_type="PERIODIC", interval_second=60, max_concurrency=10)
    tick_at(utc(2026, 5, 1, 10, 2, 1))
    # Simulate a crash after the runs were committed but before the schedule advanced.
    RecurringRun.objects.filter(pk=rr.pk).update(next_fire_time=utc(2026, 5, 1, 10, 1), fired_count=0)
    report = tick_at(utc(2026, 5, 1, 10, 3, 1))
    assert len(report.duplicates) == 2 and len(report.fired) == 1
    assert run_times(rr) == [utc(2026, 5, 1, 10, m) for m in (1, 2, 3)]
    rr.refresh_from_db()
    assert rr.next_fire_time == utc(2026, 5, 1, 10, 4)
