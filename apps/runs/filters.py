"""FilterSets of the run pages (applied by apps.runs.selectors): the runs table, a run's
task table and the executions list."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from apps.core.choices import RuntimeState
from apps.core.filters import ListFilterSet

#: The executions list's cache filter: steps reused from the cache, or run.
CACHE_CHOICES = (("cached", "Cached"), ("executed", "Not cached"))


class RunFilterSet(ListFilterSet):
    """The runs table: ``q`` on the name, ``state``; sort by name, creation, state or
    duration (``duration`` needs run_list_with_duration's annotation)."""

    sorts = {"name": "display_name", "created": "created_at", "state": "state", "duration": "duration"}

    state = django_filters.ChoiceFilter(choices=RuntimeState.choices)


class TaskFilterSet(ListFilterSet):
    """A run's task table: ``tq`` on the task key, ``tstate``, sorted by ``tsort``
    (planned order by default)."""

    search_field = "key"
    search_param = "tq"
    sort_param = "tsort"
    default_sort = "order"
    sorts = {
        "order": "created_at",  # the order the engine planned them: loop iterations by index
        "name": "key",
        "state": "state",
        "started": "started_at",
        "duration": "duration",
        "kind": "kind",
    }

    tstate = django_filters.ChoiceFilter(field_name="state", choices=RuntimeState.choices)


class ExecutionFilterSet(ListFilterSet):
    """The executions list: ``q`` on the step name, ``pipeline``, ``component``,
    ``state`` and ``cache`` (cached or executed)."""

    search_field = "name"
    sorts = {
        "name": "name",
        "component": "component_name",
        "state": "state",
        "started": "started_at",
        "duration": "duration",
        "created": "created_at",
    }

    pipeline = django_filters.CharFilter(field_name="run__pipeline_name", strip=False)
    component = django_filters.CharFilter(field_name="component_name", strip=False)
    state = django_filters.ChoiceFilter(choices=RuntimeState.choices)
    cache = django_filters.ChoiceFilter(choices=CACHE_CHOICES, method="filter_cache")

    def filter_cache(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset.filter(cached_from__isnull=value == "executed")
