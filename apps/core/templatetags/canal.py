"""Template helpers for Canal's pages: state badges, durations, values.

Everything here returns plain strings that Django escapes, or markup built with
``format_html`` (which escapes every argument), so a user-supplied value can
never become markup.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.core.choices import RUNTIME_STATE_COLORS, RuntimeState
from apps.core.timefmt import format_instant, machine_instant
from apps.engine.runtime_params import tidy_numbers, type_label

register = template.Library()

STATE_ICONS = {
    "PENDING": "○",
    "RUNNING": "◔",
    "SUCCEEDED": "✓",
    "CACHED": "✓",
    "SKIPPED": "↷",
    "FAILED": "✗",
    "CANCELING": "◌",
    "CANCELED": "⊘",
    "PAUSED": "⏸",
    "RUNTIME_STATE_UNSPECIFIED": "?",
}
STATE_LABELS = {choice.value: choice.label for choice in RuntimeState}
STATE_LABELS["CACHED"] = "Cached"


def state_icon_of(state: str) -> str:
    """The one-character icon of a state."""
    return STATE_ICONS.get(state or "", "?")


@register.filter
def state_icon(state: str) -> str:
    """The icon for a state (✓ ✗ ◔ …)."""
    return state_icon_of(state)


@register.filter
def state_label(state: str) -> str:
    """The human label of a state."""
    return STATE_LABELS.get(state or "", state or "—")


@register.simple_tag
def state_badge(state: str, compact: bool = False) -> SafeString:
    """A coloured state with its icon; ``compact`` shows the icon only (with a tooltip)."""
    state = state or "RUNTIME_STATE_UNSPECIFIED"
    label = STATE_LABELS.get(state, state)
    colour = RUNTIME_STATE_COLORS.get(state, "grey") if state != "CACHED" else "teal"
    if compact:
        return format_html(
            '<span class="state-icon state-{} c-{}" title="{}" role="img" aria-label="{}">{}</span>',
            state,
            colour,
            label,
            label,
            state_icon_of(state),
        )
    return format_html(
        '<span class="status state-{} c-{}" data-state="{}">'
        '<span class="ico" aria-hidden="true">{}</span>{}</span>',
        state,
        colour,
        state,
        state_icon_of(state),
        label,
    )


def format_duration(delta: timedelta | float | None) -> str:
    """``1h 02m``, ``3m 07s``, ``4.2s``; an em dash when unknown."""
    if delta is None:
        return "—"
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@register.filter
def duration(value: Any) -> str:
    """A timedelta (or seconds) as a short duration."""
    return format_duration(value)


@register.simple_tag
def elapsed(start: datetime | None, end: datetime | None) -> str:
    """Time from ``start`` to ``end`` (to now while it is still going)."""
    if start is None:
        return "—"
    return format_duration((end or timezone.now()) - start)


@register.filter
def when(value: datetime | None, zone: str | None = None) -> SafeString | str:
    """An instant as ``<time datetime="2026-03-29T09:00:07Z">2026-03-29 09:00:07 UTC</time>``
    (in ``zone`` when given: ``{{ t|when:rr.timezone }}``); an em dash when unknown.
    The one time format of every page (see apps.core.timefmt)."""
    if value is None or not isinstance(value, datetime):
        return "—"
    return format_html('<time datetime="{}">{}</time>', machine_instant(value), format_instant(value, zone))


@register.filter
def as_json(value: Any) -> str:
    """A value as pretty JSON text (escaped by the template like any string)."""
    try:
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


@register.filter
def param_text(value: Any) -> str:
    """A parameter value as one line: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        value = tidy_numbers(value)  # a List[int] default [1.0, 2.0] reads [1, 2], as KFP passes it
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


@register.filter
def param_type(value: Any) -> str:
    """A parameter type in the one vocabulary of every page: ``NUMBER_INTEGER`` → ``integer``."""
    return type_label(str(value) if value else "")


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    """``mapping[key]`` or None (for dicts keyed by non-identifier strings)."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def short_id(value: Any) -> str:
    """The first 8 characters of an id."""
    return str(value)[:8]


@register.filter
def filesize(value: Any) -> str:
    """Bytes as B/KiB/MiB."""
    try:
        size = float(value)
    except (TypeError, ValueError):
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


@register.filter
def split_words(value: str) -> list[str]:
    """``"A B C"`` → ``["A", "B", "C"]`` (for short literal lists in templates)."""
    return str(value).split()


@register.filter
def iteration_label(key: str) -> str:
    """A task key shown by its iteration indexes: ``root/outer#1/inner#2/step`` → ``#1 / #2 · step``."""
    parts = str(key).split("/")[1:]
    indexes = [p.split("#", 1)[1] for p in parts if "#" in p]
    last = parts[-1] if parts else str(key)
    label = " / ".join(f"#{i}" for i in indexes) or last
    if "#" not in last:
        label += f" · {last}"
    return label


@register.filter
def relative_key(key: str, prefix: str) -> str:
    """``key`` without ``prefix/`` in front (a task inside an iteration or sub-DAG)."""
    key, prefix = str(key), str(prefix).rstrip("/") + "/"
    return key[len(prefix) :] if key.startswith(prefix) else key


@register.filter
def template_key_of(key: str) -> str:
    """The static graph node a runtime task key runs (iteration indexes dropped)."""
    from apps.engine.keys import template_key

    try:
        return template_key(str(key))
    except ValueError:
        return str(key)
