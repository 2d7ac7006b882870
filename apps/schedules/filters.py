"""FilterSets of the recurring-run pages (applied by apps.schedules.selectors)."""

from __future__ import annotations

from apps.core.filters import ListFilterSet


class RecurringRunFilterSet(ListFilterSet):
    """The recurring runs list: ``q`` on the name; sort by name, creation or next fire."""

    sorts = {"name": "display_name", "created": "created_at", "next": "next_fire_time"}


class RecurringRunSortSet(RecurringRunFilterSet):
    """An experiment's Recurring runs tab: sorted the same way, with no search box."""

    search_field = ""
