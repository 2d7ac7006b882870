"""Fire-time arithmetic (pure: no database)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.schedules.triggers import TriggerError, build_trigger, get_zone, parse_cron

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local_texts(instants: list[datetime], tz: ZoneInfo = PARIS) -> list[str]:
    return [i.astimezone(tz).strftime("%m-%d %H:%M:%S %Z") for i in instants]


def cron(expr: str, tz: str = "Europe/Paris", **kw: datetime) -> object:
    return build_trigger(trigger_type="CRON", cron=expr, timezone=tz, **kw)  # type: ignore[arg-type]


# --- parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "has_seconds"),
    [
        ("0 9 * * *", False),
        ("*/5 * * * 1-5", False),
        ("0 0 9 ? * 2-6", True),  # KFP's documented example
        ("* * * * * *", True),
        ("0 0 12 1 * ?", True),
        ("  0   9 * *   *  ", False),
        ("@daily", False),
        ("@hourly", False),
    ],
)
def test_valid_cron_expressions(expr: str, has_seconds: bool) -> None:
    assert parse_cron(expr).has_seconds is has_seconds


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("", "required"),
        ("0 9 * *", "5 fields"),
        ("0 0 0 9 * * * *", "5 fields"),
        ("61 * * * *", "invalid cron"),
        ("0 25 * * *", "invalid cron"),
        ("? * * * *", "invalid cron"),
        ("0 0 30 2 *", "never fires"),
        ("hello world foo bar baz", "invalid cron"),
    ],
)
def test_invalid_cron_expressions_name_the_cron_field(expr: str, needle: str) -> None:
    with pytest.raises(TriggerError) as err:
        parse_cron(expr)
    assert err.value.field == "cron"
    assert needle in err.value.message


def test_six_fields_put_seconds_first_as_kfp_does() -> None:
    trigger = cron("30 15 10 * * *", tz="UTC")
    assert trigger.upcoming(utc(2026, 1, 1), 2) == [utc(2026, 1, 1, 10, 15, 30), utc(2026, 1, 2, 10, 15, 30)]


def test_kfp_example_runs_tuesday_to_saturday_at_nine() -> None:
    # robfig/cron counts weekdays from Sunday = 0, so 2-6 is Tuesday..Saturday.
    trigger = cron("0 0 9 ? * 2-6", tz="UTC")
    days = [i.strftime("%a %H:%M:%S") for i in trigger.upcoming(utc(2026, 6, 1), 6)]  # a Monday
    assert days == [
        "Tue 09:00:00",
        "Wed 09:00:00",
        "Thu 09:00:00",
        "Fri 09:00:00",
        "Sat 09:00:00",
        "Tue 09:00:00",
    ]


def test_timezone_validation() -> None:
    assert get_zone("Europe/Paris").key == "Europe/Paris"
    for bad in ("", "Mars/Olympus", "../etc/passwd", "Europe/"):
        with pytest.raises(TriggerError) as err:
            get_zone(bad)
        assert err.value.field == "timezone"


def test_other_validation_names_the_field() -> None:
    cases = [
        ({"trigger_type": "HOURLY"}, "trigger_type"),
        ({"trigger_type": "PERIODIC"}, "interval_second"),
        ({"trigger_type": "PERIODIC", "interval_second": 0}, "interval_second"),
        ({"trigger_type": "PERIODIC", "interval_second": 2.5}, "interval_second"),
        ({"trigger_type": "PERIODIC", "interval_second": True}, "interval_second"),
        ({"trigger_type": "PERIODIC", "interval_second": "ten"}, "interval_second"),
        ({"trigger_type": "CRON", "cron": "0 9 * * *", "timezone": "Nowhere/City"}, "timezone"),
        (
            {
                "trigger_type": "CRON",
                "cron": "0 9 * * *",
                "start_time": utc(2026, 2, 1),
                "end_time": utc(2026, 1, 1),
            },
            "end_time",
        ),
        ({"trigger_type": "CRON", "cron": "0 9 * * *", "start_time": datetime(2026, 1, 1)}, "start_time"),
    ]
    for kwargs, field in cases:
        with pytest.raises(TriggerError) as err:
            build_trigger(**kwargs)  # type: ignore[arg-type]
        assert err.value.field == field, kwargs
    assert (
        build_trigger(trigger_type="PERIODIC", interval_second="60", anchor=utc(2026, 1, 1)).interval_second
        == 60
    )


# --- cron across daylight-saving changes ----------------------------------------------


def test_daily_cron_fires_at_nine_local_on_both_sides_of_spring_forward() -> None:
    trigger = cron("0 9 * * *")
    fired = trigger.upcoming(paris(2026, 3, 27, 12), 4)
    assert local_texts(fired) == [
        "03-28 09:00:00 CET",
        "03-29 09:00:00 CEST",
        "03-30 09:00:00 CEST",
        "03-31 09:00:00 CEST",
    ]
    # ... which is 08:00 UTC before the change and 07:00 UTC after it.
    assert [f.hour for f in fired] == [8, 7, 7, 7]


def test_daily_cron_fires_at_nine_local_on_both_sides_of_fall_back() -> None:
    fired = cron("0 9 * * *").upcoming(paris(2026, 10, 23, 12), 4)
    assert local_texts(fired) == [
        "10-24 09:00:00 CEST",
        "10-25 09:00:00 CET",
        "10-26 09:00:00 CET",
        "10-27 09:00:00 CET",
    ]
    assert [f.hour for f in fired] == [7, 8, 8, 8]


def test_new_york_cron_across_its_own_change() -> None:
    fired = cron("30 8 * * 1-5", tz="America/New_York").upcoming(datetime(2026, 3, 5, tzinfo=NEW_YORK), 4)
    assert local_texts(fired, NEW_YORK) == [
        "03-05 08:30:00 EST",
        "03-06 08:30:00 EST",
        "03-09 08:30:00 EDT",
        "03-10 08:30:00 EDT",
    ]


def test_fixed_time_in_the_skipped_hour_fires_once_at_the_change() -> None:
    fired = cron("30 2 * * *").upcoming(paris(2026, 3, 28, 12), 3)
    assert local_texts(fired) == ["03-29 03:00:00 CEST", "03-30 02:30:00 CEST", "03-31 02:30:00 CEST"]


def test_wildcard_hour_has_no_firings_in_the_skipped_hour() -> None:
    fired = cron("30 * * * *").upcoming(paris(2026, 3, 29, 0, 45), 3)
    assert local_texts(fired) == ["03-29 01:30:00 CET", "03-29 03:30:00 CEST", "03-29 04:30:00 CEST"]
    # Absolute spacing stays one hour.
    assert fired[1] - fired[0] == timedelta(hours=1)


def test_fixed_time_in_the_repeated_hour_fires_once() -> None:
    fired = cron("30 2 * * *").upcoming(paris(2026, 10, 24, 12), 3)
    assert local_texts(fired) == ["10-25 02:30:00 CEST", "10-26 02:30:00 CET", "10-27 02:30:00 CET"]


def test_wildcard_hour_fires_in_both_repeated_hours() -> None:
    fired = cron("*/30 * * * *").upcoming(paris(2026, 10, 25, 1, 45), 6)
    assert local_texts(fired) == [
        "10-25 02:00:00 CEST",
        "10-25 02:30:00 CEST",
        "10-25 02:00:00 CET",
        "10-25 02:30:00 CET",
        "10-25 03:00:00 CET",
        "10-25 03:30:00 CET",
    ]
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(fired))


def test_next_after_an_instant_inside_the_repeated_hour() -> None:
    trigger = cron("*/30 * * * *")
    # 02:10 CET (the second 02:10): next is 02:30 CET, not the already-past 02:30 CEST.
    assert local_texts([trigger.next_after(paris(2026, 10, 25, 2, 10, fold=1))]) == ["10-25 02:30:00 CET"]
    assert local_texts([trigger.next_after(paris(2026, 10, 25, 2, 40, fold=0))]) == ["10-25 02:00:00 CET"]


def test_every_second_cron_crosses_fall_back_without_gaps_or_repeats() -> None:
    trigger = cron("* * * * * *")
    start = paris(2026, 10, 25, 2, 59, 58)  # CEST, just before the clocks go back
    fired = trigger.upcoming(start, 5)
    assert [f - start for f in fired] == [timedelta(seconds=s) for s in range(1, 6)]


# --- periodic ----------------------------------------------------------------------


def test_periodic_is_absolute_from_the_start_across_dst() -> None:
    trigger = build_trigger(
        trigger_type="PERIODIC",
        interval_second=86400,
        start_time=paris(2026, 3, 27, 9),
        timezone="Europe/Paris",
    )
    fired = trigger.upcoming(utc(2026, 1, 1), 3)
    assert local_texts(fired) == ["03-28 09:00:00 CET", "03-29 10:00:00 CEST", "03-30 10:00:00 CEST"]
    assert fired[1] - fired[0] == timedelta(days=1)


def test_periodic_without_start_counts_from_the_anchor_on_whole_seconds() -> None:
    anchor = utc(2026, 1, 1, 10, 0, 0) + timedelta(microseconds=654321)
    trigger = build_trigger(trigger_type="PERIODIC", interval_second=90, anchor=anchor)
    assert trigger.upcoming(anchor, 3) == [
        utc(2026, 1, 1, 10, 1, 30),
        utc(2026, 1, 1, 10, 3),
        utc(2026, 1, 1, 10, 4, 30),
    ]
    # Asking from any later instant stays on the same grid.
    assert trigger.next_after(utc(2026, 1, 1, 11, 0, 1)) == utc(2026, 1, 1, 11, 1, 30)
    assert trigger.next_after(utc(2026, 1, 1, 11, 1, 30)) == utc(2026, 1, 1, 11, 3)


# --- start and end --------------------------------------------------------------------


def test_first_firing_is_strictly_after_the_start_and_the_end_is_inclusive() -> None:
    trigger = cron("0 * * * *", tz="UTC", start_time=utc(2026, 1, 1, 10), end_time=utc(2026, 1, 1, 13))
    assert list(trigger.iter_after(utc(2025, 1, 1))) == [
        utc(2026, 1, 1, 11),
        utc(2026, 1, 1, 12),
        utc(2026, 1, 1, 13),
    ]
    periodic = build_trigger(
        trigger_type="PERIODIC",
        interval_second=600,
        start_time=utc(2026, 1, 1, 10),
        end_time=utc(2026, 1, 1, 10, 30),
    )
    assert list(periodic.iter_after(utc(2025, 1, 1))) == [
        utc(2026, 1, 1, 10, 10),
        utc(2026, 1, 1, 10, 20),
        utc(2026, 1, 1, 10, 30),
    ]
    assert periodic.next_after(utc(2026, 1, 1, 10, 30)) is None


def test_a_cron_that_only_fires_after_the_end_has_no_firings() -> None:
    trigger = cron("0 0 1 1 *", tz="UTC", end_time=utc(2026, 6, 1))
    assert trigger.next_after(utc(2026, 1, 2)) is None


# --- latest(): the catch-up window ------------------------------------------------------


def test_latest_lists_the_most_recent_instants_oldest_first() -> None:
    trigger = cron("*/5 * * * *", tz="UTC")
    instants, dropped = trigger.latest(utc(2026, 1, 1, 10, 5), utc(2026, 1, 1, 11, 2), 100)
    assert len(instants) == 12 and not dropped
    assert instants[0] == utc(2026, 1, 1, 10, 5) and instants[-1] == utc(2026, 1, 1, 11)
    instants, dropped = trigger.latest(utc(2026, 1, 1, 10, 5), utc(2026, 1, 1, 11, 2), 3)
    assert instants == [utc(2026, 1, 1, 10, 50), utc(2026, 1, 1, 10, 55), utc(2026, 1, 1, 11)] and dropped
    assert trigger.latest(utc(2026, 1, 1, 10, 6), utc(2026, 1, 1, 10, 9), 5) == ([], False)


def test_latest_over_a_long_gap_stays_cheap_for_an_every_second_cron() -> None:
    trigger = cron("* * * * * *", tz="UTC")
    instants, dropped = trigger.latest(utc(2026, 1, 1), utc(2026, 1, 31), 100)
    assert dropped and len(instants) == 100 and instants[-1] == utc(2026, 1, 31)


def test_periodic_latest_is_arithmetic() -> None:
    trigger = build_trigger(trigger_type="PERIODIC", interval_second=60, start_time=utc(2026, 1, 1))
    instants, dropped = trigger.latest(utc(2026, 1, 1), utc(2027, 1, 1), 2)
    assert instants == [utc(2026, 12, 31, 23, 59), utc(2027, 1, 1)] and dropped
    instants, dropped = trigger.latest(utc(2026, 1, 1), utc(2026, 1, 1, 0, 3, 30), 10)
    assert instants == [utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 2), utc(2026, 1, 1, 0, 3)] and not dropped
