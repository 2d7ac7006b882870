"""KFP's recurring-run macros and Go time layouts (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.schedules.macros import format_macros, format_value, go_time_format, has_macros

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def kfp(text: str) -> str:
    """KFP's own test vectors: scheduled epoch 25, current 26, index 27."""
    return format_macros(
        text,
        scheduled=EPOCH + timedelta(seconds=25),
        current=EPOCH + timedelta(seconds=26),
        run_uuid="some-run-uuid",
        index=27,
    )


def test_kfp_parameter_formatter_vectors() -> None:
    assert kfp("FOO [[RunUUID]] FOO") == "FOO some-run-uuid FOO"
    assert kfp("FOO [[ScheduledTime]] FOO") == "FOO 19700101000025 FOO"
    assert kfp("FOO [[CurrentTime]] FOO") == "FOO 19700101000026 FOO"
    assert kfp("FOO [[Index]] FOO") == "FOO 27 FOO"
    assert kfp("FOO [[ScheduledTime.15-04-05]] FOO") == "FOO 00-00-25 FOO"
    assert kfp("FOO [[CurrentTime.15-04-05]] FOO") == "FOO 00-00-26 FOO"
    assert (
        kfp("[[ScheduledTime]] [[RunUUID]] [[ScheduledTime]] [[Index]]")
        == "19700101000025 some-run-uuid 19700101000025 27"
    )
    assert kfp("FOO FOO FOO") == "FOO FOO FOO"
    assert kfp("") == ""
    assert kfp("FOO {{$.scheduledTime.strftime('%Y-%m-%d %H:%M:%S')}} FOO") == "FOO 1970-01-01 00:00:25 FOO"
    assert kfp("FOO {{$.currentTime.strftime('%Y-%m-%d %H:%M:%S')}} FOO") == "FOO 1970-01-01 00:00:26 FOO"
    assert kfp("[[UnknownExpression]]") == "[[UnknownExpression]]"
    assert kfp("{{$.inputs.parameters['x']}}") == "{{$.inputs.parameters['x']}}"


def test_date_layouts() -> None:
    scheduled = datetime(2021, 1, 1, tzinfo=UTC)
    current = datetime(2021, 1, 2, tzinfo=UTC)
    ctx = {"scheduled": scheduled, "current": current, "run_uuid": "u"}
    assert format_macros("[[ScheduledTime.2006-01-02]]", **ctx) == "2021-01-01"
    assert format_macros("[[CurrentTime.2006-01-02]]", **ctx) == "2021-01-02"


MOMENT = datetime(2026, 3, 29, 9, 4, 5, tzinfo=ZoneInfo("Europe/Paris"))  # a Sunday, CEST


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("20060102150405", "20260329090405"),
        ("2006-01-02T15:04:05Z07:00", "2026-03-29T09:04:05+02:00"),
        ("Mon Jan _2 15:04:05 MST 2006", "Sun Mar 29 09:04:05 CEST 2026"),
        ("Monday, January 2, 06", "Sunday, March 29, 26"),
        ("3:04PM", "9:04AM"),
        ("03:04:05 pm", "09:04:05 am"),
        ("1/2 3:4:5", "3/29 9:4:5"),
        ("-0700 -07:00 -07 Z0700", "+0200 +02:00 +02 +0200"),
        ("15:04:05.000", "09:04:05.000"),
        ("15:04:05.999", "09:04:05"),
        ("002 __2", "088  88"),
        ("Month", "Month"),  # 'Mon' followed by a lower-case letter is text, as in Go
        ("Janet", "Janet"),
        ("_2006", "_2026"),  # Go: a literal underscore, then the year
        ("year=2006", "year=2026"),
    ],
)
def test_go_time_layouts(layout: str, expected: str) -> None:
    assert go_time_format(MOMENT, layout) == expected


def test_iso_z_prints_z_for_utc() -> None:
    assert (
        go_time_format(datetime(2026, 1, 1, tzinfo=UTC), "2006-01-02T15:04:05Z07:00")
        == "2026-01-01T00:00:00Z"
    )
    assert go_time_format(datetime(2026, 1, 1, 12, tzinfo=UTC), "3PM MST") == "12PM UTC"


def test_times_are_shown_in_the_schedules_timezone_to_the_second() -> None:
    instant = datetime(2026, 7, 1, 7, 0, 0, 123456, tzinfo=UTC)
    text = format_macros(
        "[[ScheduledTime]] [[ScheduledTime.15:04 MST]]",
        scheduled=instant,
        current=instant,
        run_uuid="u",
        tz=ZoneInfo("Europe/Paris"),
    )
    assert text == "20260701090000 09:00 CEST"


def test_index_left_alone_without_a_counter_and_nested_values_formatted() -> None:
    ctx = {"scheduled": EPOCH, "current": EPOCH, "run_uuid": "run-id", "index": None}
    assert format_macros("[[Index]]", **ctx) == "[[Index]]"
    value = {"nested": ["[[RunUUID]]", {"time": "[[ScheduledTime]]"}], "n": 42, "b": True, "none": None}
    assert format_value(value, **ctx) == {
        "nested": ["run-id", {"time": "19700101000000"}],
        "n": 42,
        "b": True,
        "none": None,
    }
    assert has_macros("a-[[ScheduledTime]]") and not has_macros("plain")
