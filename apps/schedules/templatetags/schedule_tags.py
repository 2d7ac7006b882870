"""Template helpers for recurring-run pages: times in a schedule's timezone, and
links to pages other apps may or may not provide yet."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django import template
from django.urls import NoReverseMatch, reverse

from apps.schedules.selectors import interval_text

register = template.Library()


@register.filter
def in_zone(value: datetime | None, zone: str) -> str:
    """An instant as "2026-03-29 09:00:00 CEST" in the IANA timezone ``zone``."""
    if value is None:
        return "—"
    try:
        tz = ZoneInfo(zone or "UTC")
    except Exception:
        tz = ZoneInfo("UTC")
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


@register.simple_tag
def url_or_empty(name: str, *args: Any) -> str:
    """``{% url %}`` that yields "" when the page does not exist (yet)."""
    try:
        return reverse(name, args=[str(a) for a in args])
    except NoReverseMatch:
        return ""


@register.filter
def every(seconds: int | None) -> str:
    """An interval in words: 7200 → "every 2 hours"."""
    return interval_text(int(seconds or 0) or 1)
