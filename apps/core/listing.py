"""Helpers shared by list pages: whitelisted sorting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


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
