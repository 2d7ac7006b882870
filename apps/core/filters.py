"""The FilterSet every list page's filters build on (django-filter, as NetBox does): a
search box ``q`` and a whitelisted ``sort``. Each app declares its FilterSets in its own
``filters.py``, next to its selectors, which apply them; views only pass the request's
parameters through.

Bad values never fail a page: a search longer than MAX_SEARCH is cut (and a message
says so), a sort key not on the list falls back to the default, a choice not offered is
ignored, as the pages did before FilterSets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import django_filters
from django import forms
from django.contrib import messages
from django.db.models import QuerySet

from apps.core.listing import MAX_SEARCH, apply_sort


class SearchField(forms.CharField):
    """The search box's text, stripped, at most MAX_SEARCH characters (longer is cut)."""

    def to_python(self, value: Any) -> str:
        return str(super().to_python(value))[:MAX_SEARCH]


class SearchFilter(django_filters.CharFilter):  # type: ignore[misc]  # django-filter ships no types
    field_class = SearchField


class ListFilterSet(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no types
    """``q`` searches ``search_field`` (case-insensitive, contains); then the rows are
    ordered by ``sort_param`` ("name" or "-name", a key of ``sorts``), else by
    ``default_sort``. ``query`` and ``sort`` are what was applied, for the page."""

    search_field: ClassVar[str] = "display_name"
    search_param: ClassVar[str] = "q"
    sorts: ClassVar[Mapping[str, str]] = {}
    default_sort: ClassVar[str] = "-created"
    sort_param: ClassVar[str] = "sort"

    q = SearchFilter(method="filter_search")

    def __init__(self, data: Any = None, queryset: Any = None, *, request: Any = None, **kwargs: Any):
        super().__init__(data if data is not None else {}, queryset, request=request, **kwargs)
        self.query = ""
        self.sort = self.default_sort
        if self.search_param != "q":
            self.filters[self.search_param] = self.filters.pop("q")

    def filter_search(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        if not self.search_field:  # a list without a search box
            return queryset
        self.query = value
        return queryset.filter(**{f"{self.search_field}__icontains": value})

    def applied(self, name: str) -> str:
        """The value of filter ``name`` that was applied ("" if none, or if the value
        was not valid and so ignored). Read after ``qs``."""
        return str(self.form.cleaned_data.get(name) or "")

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        raw = str(self.data.get(self.search_param, "")).strip()
        if self.search_field and len(raw) > MAX_SEARCH and self.request is not None:
            messages.warning(
                self.request, f"Search text is limited to {MAX_SEARCH} characters; the rest was ignored."
            )
        queryset = super().filter_queryset(queryset)
        if not self.sorts:
            return queryset
        requested = str(self.data.get(self.sort_param, self.default_sort))
        queryset, self.sort = apply_sort(queryset, requested, self.sorts, default=self.default_sort)
        return queryset
