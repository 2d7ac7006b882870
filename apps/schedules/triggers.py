"""Fire-time arithmetic for recurring runs. Pure: no Django, no database.

A trigger is a cron expression or a fixed interval, in an explicit IANA timezone,
with an optional start and end. Every instant it returns is an aware UTC datetime
on a whole second.

**Cron.** 5 fields (``minute hour day-of-month month day-of-week``), or KFP's
6-field robfig form with seconds first (``second minute hour dom month dow``, e.g.
``0 0 9 ? * 2-6``); ``?`` means "any" in the day fields, days of the week count
from Sunday = 0, and ``@hourly``/``@daily``/``@weekly``/``@monthly``/``@yearly``
are accepted. The expression is matched against the *wall clock* of the
schedule's timezone, so ``0 9 * * *`` in Europe/Paris fires at 09:00 local time in
winter and in summer. Around daylight-saving changes (the rules of Vixie cron):

- a wall time that does not exist (skipped by a spring-forward) fires once, at the
  moment of the change, if the hour field is fixed (``30 2 * * *`` fires at 03:00);
  if the hour field is a wildcard (``*``, ``*/2``) the skipped hour simply has no
  firings, like every other instant that isn't on the clock;
- a wall time that occurs twice (fall-back) fires once, at its first occurrence,
  if the hour field is fixed; with a wildcard hour field it fires at both, since
  both hours really happen.

**Periodic.** Absolute intervals: ``anchor + k * interval`` for ``k >= 1``, where
the anchor is the start time or else the schedule's creation time. Timezones and
DST do not move them (a 24 h interval drifts by an hour of wall clock across a DST
change, by design).

**Start and end.** As in KFP, the first firing is strictly after the start (cron:
the first matching instant after it; periodic: one interval after it), and an
instant equal to the end time still fires. Both must lie in Canal's time range
(``apps.engine.untrusted``: 1970 to the year 9000), which leaves centuries of room
for the arithmetic here (an interval is at most a century) below ``datetime.max``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from apps.engine.untrusted import time_problem

CRON = "CRON"
PERIODIC = "PERIODIC"

#: No timezone moves its clock by more than this in one change (the largest is 2 h).
MAX_CLOCK_SHIFT = timedelta(hours=3)
#: Safety net against pathological expressions when searching for the next match.
MAX_CANDIDATES = 200_000
ONE_SECOND = timedelta(seconds=1)
DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class TriggerError(ValueError):
    """An invalid trigger; ``field`` names the offending input."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def get_zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name`` (e.g. ``Europe/Paris``), or TriggerError."""
    key = (name or "").strip()
    if not key:
        raise TriggerError("a timezone is required (e.g. UTC or Europe/Paris)", field="timezone")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TriggerError(
            f"unknown timezone {key!r}; use an IANA name such as Europe/Paris", field="timezone"
        ) from None


@dataclass(frozen=True)
class CronExpression:
    """A validated cron expression, as croniter reads it."""

    text: str
    fields: tuple[str, ...]
    has_seconds: bool

    @property
    def hour_is_wildcard(self) -> bool:
        return self.fields[2 if self.has_seconds else 1].startswith("*")

    def iterate_wall(self, start: datetime) -> croniter:
        """Naive wall-clock matches strictly after the naive ``start``."""
        return croniter(" ".join(self.fields), start, second_at_beginning=self.has_seconds)


def parse_cron(text: str) -> CronExpression:
    """Validate a 5-field or KFP 6-field (seconds first) cron expression."""
    raw = " ".join((text or "").split())
    if not raw:
        raise TriggerError("a cron expression is required", field="cron")
    expanded = DESCRIPTORS.get(raw.lower(), raw)
    fields = tuple(expanded.split(" "))
    if len(fields) not in (5, 6):
        raise TriggerError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6 with "
            f"seconds first, as KFP writes them (e.g. '0 0 9 ? * 2-6'); {raw!r} has {len(fields)}",
            field="cron",
        )
    has_seconds = len(fields) == 6
    expr = " ".join(fields)
    try:
        valid = croniter.is_valid(expr, second_at_beginning=has_seconds)
    except (CroniterError, ValueError):
        valid = False
    if not valid:
        layout = (
            "second minute hour day-of-month month day-of-week"
            if has_seconds
            else ("minute hour day-of-month month day-of-week")
        )
        raise TriggerError(f"invalid cron expression {raw!r} (fields: {layout})", field="cron")
    parsed = CronExpression(text=raw, fields=fields, has_seconds=has_seconds)
    try:
        parsed.iterate_wall(datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise TriggerError(f"the cron expression {raw!r} never fires", field="cron") from None
    except (CroniterError, ValueError) as exc:
        raise TriggerError(f"invalid cron expression {raw!r}: {exc}", field="cron") from None
    return parsed


def _floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise TriggerError("times must carry a timezone", field=field)
    # Checked before converting: year 1 at UTC+2 has no UTC equivalent (OverflowError).
    problem = time_problem(value)
    if problem is not None:
        raise TriggerError(f"the {field.replace('_', ' ')} {problem}", field=field)
    return value.astimezone(UTC)


def _offset(instant: datetime, tz: tzinfo) -> timedelta:
    return instant.astimezone(tz).utcoffset() or timedelta(0)


def _wall(instant: datetime, tz: tzinfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


@dataclass(frozen=True)
class Trigger:
    """When a schedule fires. Build it with :func:`build_trigger`."""

    kind: str
    tz: ZoneInfo
    cron: CronExpression | None = None
    interval_second: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    anchor: datetime | None = None

    # --- the one primitive -------------------------------------------------------

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire instant strictly after ``after`` (and after the start),
        or None if there is none before the end time."""
        t = after.astimezone(UTC)
        if self.start is not None and self.start > t:
            t = self.start
        found = self._periodic_next(t) if self.kind == PERIODIC else self._cron_next(t)
        if found is None or (self.end is not None and found > self.end):
            return None
        return found

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Fire instants strictly after ``after``, in order, until the end time."""
        current = self.next_after(after)
        while current is not None:
            yield current
            current = self.next_after(current)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire instants after ``after``."""
        out: list[datetime] = []
        for instant in self.iter_after(after):
            out.append(instant)
            if len(out) >= count:
                break
        return out

    def latest(self, lo: datetime, hi: datetime, limit: int) -> tuple[list[datetime], bool]:
        """The most recent ``limit`` fire instants in ``[lo, hi]``, oldest first, and
        whether older instants in that range were left out."""
        lo, hi = lo.astimezone(UTC), hi.astimezone(UTC)
        if limit <= 0 or hi < lo:
            return [], False
        if self.kind == PERIODIC:
            return self._periodic_latest(lo, hi, limit)
        span = timedelta(minutes=1)
        before_lo = lo - timedelta(microseconds=1)
        while True:
            window_start = max(before_lo, hi - span)
            recent: deque[datetime] = deque(maxlen=limit)
            seen = 0
            for instant in self.iter_after(window_start):
                if instant > hi:
                    break
                recent.append(instant)
                seen += 1
            if window_start == before_lo:
                return list(recent), seen > limit
            if seen >= limit:
                return list(recent), True
            span *= 4

    # --- periodic --------------------------------------------------------------

    def _base(self) -> datetime:
        base = self.start or self.anchor
        assert base is not None, "a periodic trigger needs a start time or an anchor"
        return _floor_second(base)

    def _periodic_next(self, t: datetime) -> datetime:
        assert self.interval_second
        base, step = self._base(), self.interval_second
        k = max(1, math.floor((t - base).total_seconds() / step) + 1)
        candidate = base + timedelta(seconds=k * step)
        while candidate <= t:  # float rounding
            k += 1
            candidate = base + timedelta(seconds=k * step)
        return candidate

    def _periodic_latest(self, lo: datetime, hi: datetime, limit: int) -> tuple[list[datetime], bool]:
        assert self.interval_second
        base, step = self._base(), self.interval_second
        if self.end is not None and self.end < hi:
            hi = self.end
        if self.start is not None and lo <= self.start:
            lo = self.start + timedelta(microseconds=1)
        k_lo = max(1, math.ceil((lo - base).total_seconds() / step))
        k_hi = math.floor((hi - base).total_seconds() / step)
        if k_hi < k_lo:
            return [], False
        first = max(k_lo, k_hi - limit + 1)
        return [base + timedelta(seconds=k * step) for k in range(first, k_hi + 1)], first > k_lo

    # --- cron, on the wall clock of the timezone -----------------------------------

    def _instants_for_wall(self, wall: datetime) -> list[datetime]:
        """Map a naive wall-clock match to the instants it stands for (0, 1 or 2)."""
        assert self.cron is not None
        first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if _wall(first, self.tz) == wall:  # it happens twice (fall-back)
            return [first, second] if self.cron.hour_is_wildcard else [first]
        # It never happens (spring-forward gap): fire at the change, for a fixed hour.
        return [] if self.cron.hour_is_wildcard else [self._transition(second, first)]

    def _transition(self, lo: datetime, hi: datetime) -> datetime:
        """The first instant in (lo, hi] with hi's UTC offset: the moment the clock jumped."""
        target = _offset(hi, self.tz)
        while hi - lo > ONE_SECOND:
            mid = _floor_second(lo + (hi - lo) / 2)
            if mid <= lo:
                mid = lo + ONE_SECOND
            if _offset(mid, self.tz) == target:
                hi = mid
            else:
                lo = mid
        return hi

    def _cron_next(self, t: datetime) -> datetime | None:
        assert self.cron is not None
        tz = self.tz
        # Just before a fall-back, instants after t can have an earlier wall time than
        # t's: start the search that much earlier.
        back = max(timedelta(0), _offset(t, tz) - _offset(t + MAX_CLOCK_SHIFT, tz))
        walls = self.cron.iterate_wall(_wall(t, tz) - back - ONE_SECOND)
        end_wall = _wall(self.end, tz) + MAX_CLOCK_SHIFT if self.end is not None else None
        best: datetime | None = None
        stop_wall: datetime | None = None
        for _ in range(MAX_CANDIDATES):
            try:
                wall = walls.get_next(datetime)
            except CroniterBadDateError:
                break
            if stop_wall is not None and wall > stop_wall:
                break
            if best is None and end_wall is not None and wall > end_wall:
                break
            for instant in self._instants_for_wall(wall):
                if instant > t and (best is None or instant < best):
                    best = instant
                    # A later wall time can only be an earlier instant across a fall-back
                    # just before ``best``: look that much further, usually not at all.
                    slack = max(timedelta(0), _offset(best - MAX_CLOCK_SHIFT, tz) - _offset(best, tz))
                    stop_wall = _wall(best, tz) + slack
        return best


def _whole_seconds(value: object) -> int:
    if value is None or value == "":
        raise TriggerError("a periodic schedule needs an interval (interval_second)", field="interval_second")
    if isinstance(value, bool):
        raise TriggerError("interval_second must be a whole number of seconds", field="interval_second")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise TriggerError(
        f"interval_second must be a whole number of seconds, not {value!r}", field="interval_second"
    )


def build_trigger(
    *,
    trigger_type: str,
    cron: str = "",
    interval_second: int | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    timezone: str = "UTC",
    anchor: datetime | None = None,
) -> Trigger:
    """Validate the parts of a trigger and assemble it; raises TriggerError."""
    tz = get_zone(timezone)
    start = _aware(start_time, "start_time")
    end = _aware(end_time, "end_time")
    if start is not None and end is not None and end <= start:
        raise TriggerError("the end time must be after the start time", field="end_time")
    if trigger_type == CRON:
        return Trigger(kind=CRON, tz=tz, cron=parse_cron(cron), start=start, end=end)
    if trigger_type == PERIODIC:
        seconds = _whole_seconds(interval_second)
        if seconds < 1:
            raise TriggerError("interval_second must be at least 1", field="interval_second")
        if seconds > 100 * 366 * 86400:
            raise TriggerError("interval_second is longer than a century", field="interval_second")
        base = _aware(anchor, "start_time") or datetime.now(UTC)
        return Trigger(kind=PERIODIC, tz=tz, interval_second=seconds, start=start, end=end, anchor=base)
    raise TriggerError(
        f"trigger_type must be {CRON} or {PERIODIC}, not {trigger_type!r}", field="trigger_type"
    )
