"""FilterSets of the experiment pages (applied by apps.experiments.selectors)."""

from __future__ import annotations

from apps.core.filters import ListFilterSet


class ExperimentFilterSet(ListFilterSet):
    """The experiments list: ``q`` on the name; sort by name, creation or last run."""

    sorts = {"name": "display_name", "created": "created_at", "last_run": "last_run_created_at"}
