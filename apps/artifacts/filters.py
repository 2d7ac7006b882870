"""FilterSets of the artifact pages (applied by apps.artifacts.selectors)."""

from __future__ import annotations

import django_filters

from apps.core.filters import ListFilterSet


class ArtifactFilterSet(ListFilterSet):
    """The artifacts list: ``type`` (a schema title), ``q`` on the name; sort by name,
    type or creation."""

    search_field = "name"
    sorts = {"name": "name", "type": "schema_title", "created": "created_at"}

    type = django_filters.CharFilter(field_name="schema_title", strip=False)
