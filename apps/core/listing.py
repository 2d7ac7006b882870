"""Helpers shared by list pages: page sizes, the search length limit and whitelisted
sorting (applied by the FilterSets in apps.core.filters)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from django.db.models import Model, QuerySet
from django.http import HttpRequest

M = TypeVar("M", bound=Model)

#: The page sizes list pages offer (as KFP's UI does).
PAGE_SIZES = (10, 20, 50, 100)
#: The longest search text a list page applies. No name Canal stores is longer, and
#: SQLite refuses a LIKE pattern over 50,000 bytes (a 100,000-character search was a 500).
MAX_SEARCH = 255


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
    return qs.order_by(f"-{field}" if descending else field, "-pk"), requested
