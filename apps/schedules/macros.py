"""KFP's recurring-run macros, for run names and string parameters. Pure.

Recognised, exactly as KFP's ``ParameterFormatter`` spells them:

- ``[[ScheduledTime]]`` and ``[[CurrentTime]]``: the instant the run was scheduled
  for / created at, as ``20060102150405`` (``YYYYmmddHHMMSS``);
- ``[[ScheduledTime.<layout>]]`` and ``[[CurrentTime.<layout>]]``: the same instant in
  a Go reference-time layout, e.g. ``[[ScheduledTime.15-04-05]]`` → ``09-00-00``,
  ``[[ScheduledTime.2006-01-02]]`` → ``2026-03-29``;
- ``{{$.scheduledTime.strftime('%Y-%m-%d')}}`` and ``{{$.currentTime.strftime(…)}}``:
  the same with strftime codes (KFP ≥ 2.5);
- ``[[RunUUID]]``: the run's id; ``[[Index]]``: the schedule's run counter (1, 2, …).

Anything else in ``[[…]]`` or ``{{$.…}}`` is left as it is. Times are whole seconds.
KFP formats them in UTC; Canal formats them in the schedule's timezone, which is
UTC unless the schedule says otherwise (so a KFP schedule formats identically).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, tzinfo
from functools import partial
from typing import Any

DEFAULT_LAYOUT = "20060102150405"
MACRO = re.compile(r"\[\[(.*?)\]\]|\{\{\$\.(.*?)\}\}")
STRFTIME = re.compile(r"^(scheduledTime|currentTime)\.strftime\('(.*)'\)$", re.DOTALL)

_LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_LONG_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _offset_text(value: datetime, *, iso_z: bool, colon: bool, minutes: bool, seconds: bool) -> str:
    offset = value.utcoffset()
    total = int(offset.total_seconds()) if offset is not None else 0
    if iso_z and total == 0:
        return "Z"
    sign = "-" if total < 0 else "+"
    total = abs(total)
    hours, rest = divmod(total, 3600)
    mins, secs = divmod(rest, 60)
    sep = ":" if colon else ""
    text = f"{sign}{hours:02d}"
    if minutes:
        text += f"{sep}{mins:02d}"
    if seconds:
        text += f"{sep}{secs:02d}"
    return text


def _trimmed_fraction(value: datetime, width: int, sep: str) -> str:
    digits = f"{value.microsecond:06d}000"[:width].rstrip("0")
    return sep + digits if digits else ""


def _hour12(value: datetime) -> int:
    return value.hour % 12 or 12


# Go's layout elements, longest first where one is a prefix of another. Each maps
# to a function of the (aware) datetime.
_ZONES: list[tuple[str, Callable[[datetime], str]]] = []
for _prefix, _iso in (("Z", True), ("-", False)):
    _ZONES += [
        (
            f"{_prefix}070000",
            partial(_offset_text, iso_z=_iso, colon=False, minutes=True, seconds=True),
        ),
        (
            f"{_prefix}07:00:00",
            partial(_offset_text, iso_z=_iso, colon=True, minutes=True, seconds=True),
        ),
        (
            f"{_prefix}0700",
            partial(_offset_text, iso_z=_iso, colon=False, minutes=True, seconds=False),
        ),
        (
            f"{_prefix}07:00",
            partial(_offset_text, iso_z=_iso, colon=True, minutes=True, seconds=False),
        ),
        (
            f"{_prefix}07",
            partial(_offset_text, iso_z=_iso, colon=False, minutes=False, seconds=False),
        ),
    ]


def _match_element(layout: str, i: int) -> tuple[int, Callable[[datetime], str]] | None:
    """The Go layout element starting at ``layout[i]`` (its length and formatter), as
    Go's ``nextStdChunk`` finds it, or None if the character is literal text."""
    rest = layout[i:]
    c = rest[0]
    if c == "J" and rest.startswith("Jan"):
        if rest.startswith("January"):
            return 7, lambda v: _LONG_MONTHS[v.month - 1]
        if not rest[3:4].islower():
            return 3, lambda v: _LONG_MONTHS[v.month - 1][:3]
    elif c == "M":
        if rest.startswith("Mon"):
            if rest.startswith("Monday"):
                return 6, lambda v: _LONG_DAYS[v.weekday()]
            if not rest[3:4].islower():
                return 3, lambda v: _LONG_DAYS[v.weekday()][:3]
        if rest.startswith("MST"):
            return (
                3,
                lambda v: (
                    v.tzname() or _offset_text(v, iso_z=False, colon=False, minutes=True, seconds=False)
                ),
            )
    elif c == "0":
        if rest[1:2] in ("1", "2", "3", "4", "5", "6"):
            return 2, {
                "1": lambda v: f"{v.month:02d}",
                "2": lambda v: f"{v.day:02d}",
                "3": lambda v: f"{_hour12(v):02d}",
                "4": lambda v: f"{v.minute:02d}",
                "5": lambda v: f"{v.second:02d}",
                "6": lambda v: f"{v.year % 100:02d}",
            }[rest[1]]
        if rest.startswith("002"):
            return 3, lambda v: f"{v.timetuple().tm_yday:03d}"
    elif c == "1":
        if rest.startswith("15"):
            return 2, lambda v: f"{v.hour:02d}"
        return 1, lambda v: str(v.month)
    elif c == "2":
        if rest.startswith("2006"):
            return 4, lambda v: f"{v.year:04d}"
        return 1, lambda v: str(v.day)
    elif c == "_":
        if rest.startswith("_2") and not rest.startswith("_2006"):
            return 2, lambda v: f"{v.day:>2d}"
        if rest.startswith("__2"):
            return 3, lambda v: f"{v.timetuple().tm_yday:>3d}"
    elif c == "3":
        return 1, lambda v: str(_hour12(v))
    elif c == "4":
        return 1, lambda v: str(v.minute)
    elif c == "5":
        return 1, lambda v: str(v.second)
    elif c == "P" and rest.startswith("PM"):
        return 2, lambda v: "PM" if v.hour >= 12 else "AM"
    elif c == "p" and rest.startswith("pm"):
        return 2, lambda v: "pm" if v.hour >= 12 else "am"
    elif c in "-Z":
        for element, formatter in _ZONES:
            if rest.startswith(element):
                return len(element), formatter
    elif c in ".," and rest[1:2] in ("0", "9"):
        digit = rest[1]
        j = 1
        while j < len(rest) and rest[j] == digit:
            j += 1
        if not rest[j : j + 1].isdigit():
            width = j - 1
            if digit == "9":  # trimmed: whole seconds print nothing
                return j, lambda v, w=width, sep=c: _trimmed_fraction(v, w, sep)
            return j, lambda v, w=width, sep=c: sep + f"{v.microsecond:06d}000"[:w]
    return None


def go_time_format(value: datetime, layout: str) -> str:
    """Format ``value`` with a Go reference-time layout (Mon Jan 2 15:04:05 MST 2006)."""
    out: list[str] = []
    i = 0
    while i < len(layout):
        found = _match_element(layout, i)
        if found is None:
            out.append(layout[i])
            i += 1
            continue
        length, formatter = found
        out.append(formatter(value))
        i += length
    return "".join(out)


def format_macros(
    text: str,
    *,
    scheduled: datetime | None,
    current: datetime,
    run_uuid: str,
    index: int | None = None,
    tz: tzinfo | None = None,
) -> str:
    """Substitute the macros in ``text``. ``scheduled``/``current`` are aware
    datetimes, shown in ``tz`` (default: their own zone) to the whole second."""

    def local(value: datetime) -> datetime:
        return (value.astimezone(tz) if tz is not None else value).replace(microsecond=0)

    def substitute(match: re.Match[str]) -> str:
        whole = match.group(0)
        inner = match.group(1)
        if inner is None:  # {{$.…}}
            wanted = STRFTIME.match(match.group(2) or "")
            if not wanted:
                return whole
            moment = scheduled if wanted.group(1) == "scheduledTime" else current
            if moment is None:
                return whole
            try:
                return local(moment).strftime(wanted.group(2))
            except ValueError:
                return whole
        if inner == "RunUUID":
            return run_uuid
        if inner == "Index":
            return whole if index is None else str(index)
        for name, moment in (("ScheduledTime", scheduled), ("CurrentTime", current)):
            if moment is None:
                continue
            if inner == name:
                return go_time_format(local(moment), DEFAULT_LAYOUT)
            if inner.startswith(name + "."):
                return go_time_format(local(moment), inner[len(name) + 1 :])
        return whole

    return MACRO.sub(substitute, text)


def has_macros(text: str) -> bool:
    """Whether ``text`` holds something that looks like a macro."""
    return bool(MACRO.search(text or ""))


def format_value(value: Any, **context: Any) -> Any:
    """Substitute macros in every string inside a JSON value (lists and objects too)."""
    if isinstance(value, str):
        return format_macros(value, **context)
    if isinstance(value, list):
        return [format_value(item, **context) for item in value]
    if isinstance(value, dict):
        return {key: format_value(item, **context) for key, item in value.items()}
    return value
