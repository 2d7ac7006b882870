"""FilterSets of the pipeline pages (applied by apps.pipelines.selectors)."""

from __future__ import annotations

from apps.core.filters import ListFilterSet


class PipelineFilterSet(ListFilterSet):
    """The pipelines list: ``q`` on the name; sort by name or creation."""

    sorts = {"name": "display_name", "created": "created_at"}
