"""Template helpers for recurring-run pages: times in a schedule's timezone, and
links to pages other apps may or may not provide yet."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString

from apps.core.templatetags.canal import when
from apps.schedules.selectors import interval_text

register = template.Library()


@register.filter
def in_zone(value: datetime | None, zone: str) -> SafeString | str:
    """An instant in the IANA timezone ``zone``, in the one format of every page
    ("2026-03-29 09:00:00 CEST", see apps.core.timefmt)."""
    return when(value, zone)


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
