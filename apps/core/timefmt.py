"""The one way Canal's pages show an instant: ``2026-03-29 09:00:07 UTC``.

Every template (through the ``when`` filter in ``apps.core.templatetags.canal``) and
every view that sends a time to the page's script uses :func:`format_instant`, so a
time is never shown without its zone, nor as ISO 8601 with a ``T``.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

UTC = ZoneInfo("UTC")
FORMAT = "%Y-%m-%d %H:%M:%S %Z"


def zone_of(name: str | None) -> tzinfo:
    """The IANA zone ``name``, or UTC when it is empty or unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, KeyError, OSError):
        return UTC


def format_instant(value: datetime | None, zone: str | None = None) -> str:
    """``value`` in ``zone`` (default UTC) as ``YYYY-MM-DD HH:MM:SS ZONE``; an em dash
    when unknown. A naive datetime is taken to be UTC (Django stores UTC)."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone_of(zone)).strftime(FORMAT)


def machine_instant(value: datetime | None) -> str:
    """``value`` as RFC 3339 in UTC, for ``<time datetime="…">`` (never shown)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
