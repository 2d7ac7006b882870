"""Helpers shared by list pages: page sizes, the search length limit and whitelisted
sorting (applied by the FilterSets in apps.core.filters)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from django.core.paginator import Page, Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.http import RFC3986_SUBDELIMS

M = TypeVar("M", bound=Model)

#: The page sizes list pages offer (as KFP's UI does).
PAGE_SIZES = (10, 20, 50, 100)
#: The longest search text a list page applies. No name Canal stores is longer, and
#: SQLite refuses a LIKE pattern over 50,000 bytes (a 100,000-character search was a 500).
MAX_SEARCH = 255


#: A stand-in id for :func:`row_url`: a valid UUID (so ``<uuid:...>`` routes reverse
#: it) with no character that quoting changes, and no id Canal generates.
_MARKER = "ffffffff-0000-4000-8000-c0ffeec0ffee"


def row_url(viewname: str) -> Callable[[Any], str]:
    """``reverse(viewname, args=[id])`` for every row of a page, at the cost of one
    reverse: the route is reversed once with a stand-in id, and each row's id is
    quoted as ``reverse`` quotes it and put in its place. A page of 50 rows links
    each row three or four times; with a {% url %} per link the runs page took
    69-74 ms of CPU, with this 56-59 ms (p50 of 30, 100k-run MariaDB dataset).
    Made per request, so the script prefix of that request applies."""
    template = reverse(viewname, args=[_MARKER])
    before, marker, after = template.partition(_MARKER)
    if not marker:  # a route that does not put its argument in the path as given
        return lambda value: reverse(viewname, args=[value])
    # What Django's reverse leaves unquoted in a path segment, "/" excepted: an id
    # never spans segments.
    return lambda value: before + quote(str(value), safe=RFC3986_SUBDELIMS + "~:@") + after


def page_size(request: HttpRequest, default: int = 20) -> int:
    """The ``page_size`` asked for, if it is one of PAGE_SIZES; else ``default``."""
    try:
        size = int(request.GET.get("page_size", default))
    except ValueError:
        return default
    return size if size in PAGE_SIZES else default


def apply_sort(
    qs: QuerySet[M], requested: str, allowed: Mapping[str, str], *, default: str
) -> tuple[QuerySet[M], str]:
    """Order by a whitelisted key ("name" or "-name"); anything else falls back to
    ``default``. User input never reaches ``order_by`` unchecked."""
    key = requested.lstrip("-")
    if key not in allowed:
        requested, key = default, default.lstrip("-")
    descending = requested.startswith("-")
    field = allowed[key]
    # Ties broken by the primary key in the same direction, so that one index
    # (..., field, id) read forwards or backwards gives the order without a sort.
    if descending:
        return qs.order_by(f"-{field}", "-pk"), requested
    return qs.order_by(field, "pk"), requested


#: A list page counts its rows only this many pages past the page it shows. Past that,
#: the pager says "of more than N" and Next stays offered. The count is what a numbered
#: page costs most at scale: a runs page's exact COUNT(*) read a namespace's 33,335
#: index entries (8 of a page's 13 ms in MariaDB at 100k runs).
COUNT_AHEAD_PAGES = 10
#: No page number asks for a count bound beyond this (a LIMIT must fit 64 bits).
_MAX_PAGE = 10**9


def _page_number(number: Any) -> int | None:
    """A page number as Django's Paginator reads it (``int``, a float only if whole), or
    None where it reads none: then it shows page 1. Read another way ("1e3" through
    float, or 400 nines overflowing a float), the count's bound and the page shown
    disagreed, and a huge page showed a counted-to 'last' page with no Next."""
    try:
        if isinstance(number, float) and not number.is_integer():
            return None
        return int(number)
    except (TypeError, ValueError, OverflowError):
        return None


class BoundedPaginator(Paginator):  # type: ignore[type-arg]  # rows of any model
    """A Paginator that counts a queryset's rows no further than COUNT_AHEAD_PAGES pages
    past the page asked for: ``COUNT(*)`` over ``LIMIT bound + 1``, without the order.

    Page 1 of a 100k-row list reads at most 11 pages of index entries, not all of them;
    page 200 reads up to page 210, what its OFFSET reads anyway. ``exact`` says whether
    ``count`` is the list's length or only a lower bound (then the list has more rows
    than ``counted_to``). A page past the end is still the last page, as with Django's
    Paginator: the bound is then past the end, so that count is exact. KFP's own UI pages
    with tokens and shows no total at all."""

    _asked = 1
    exact = True

    def get_page(self, number: Any) -> Page:  # type: ignore[type-arg]
        asked = _page_number(number)
        if asked is not None and asked < 1:
            number = 1  # page 0 or below is page 1, not the last (which may be uncounted)
        return super().get_page(number)

    def validate_number(self, number: Any) -> int:
        if "count" not in self.__dict__:  # the first page asked for sets the bound
            asked = _page_number(number)
            self._asked = 1 if asked is None else min(max(asked, 1), _MAX_PAGE)
        return super().validate_number(number)

    @property
    def counted_to(self) -> int:
        """The most rows the count looks for."""
        return (self._asked + COUNT_AHEAD_PAGES) * self.per_page

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return len(qs)
        bound = self.counted_to
        if not qs.query.is_sliced:
            qs = qs.order_by()  # the order changes no count, and may cost a sort
        # The ids alone: a column the queryset annotates (a run's duration) would make
        # every counted row a read of the table, not of an index.
        found = qs.values("pk")[: bound + 1].count()
        self.exact = found <= bound
        return found


class IdsFirstPaginator(BoundedPaginator):
    """A Paginator that reads a page of a queryset in two steps: the page's primary keys
    (the filter, the order and the OFFSET over the list's index alone, no joins), then
    those rows with everything the queryset joins in.

    In one query, with the joins a list's ``select_related`` adds, MariaDB chose to
    drive the join from the smallest table (the namespace's 30 experiments) and sort
    33k runs for every page: 0.8 s at 100k runs. The ids alone are an index range
    read; the 50 rows by primary key are cheap. One more query per page, a fixed one."""

    def page(self, number: Any) -> Page:  # type: ignore[type-arg]
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        return Page(self._rows(bottom, top), number, self)

    def _rows(self, bottom: int, top: int) -> Sequence[Any]:
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return list(qs[bottom:top])
        ids = list(qs.values_list("pk", flat=True)[bottom:top])
        if not ids:
            return []
        by_pk = {row.pk: row for row in qs.filter(pk__in=ids).order_by()}
        return [by_pk[pk] for pk in ids if pk in by_pk]
