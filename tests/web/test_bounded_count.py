"""List pages count their rows only a few pages past the page shown
(apps.core.listing.BoundedPaginator): page 1 of a 100k-run list does not read every
index entry of the namespace. Past the bound the pager says "of more than N" and keeps
Next; near the end the count is exact again and the last page has no Next.

COUNT_AHEAD_PAGES is lowered to 1 here so that a few dozen rows cross the bound."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core import listing
from apps.core.choices import RuntimeState
from apps.core.listing import BoundedPaginator, IdsFirstPaginator
from apps.pipelines.models import Pipeline
from tests.factories import (
    ArtifactFactory,
    ExperimentFactory,
    PipelineFactory,
    RecurringRunFactory,
    RunFactory,
    TaskFactory,
)

ROWS = 35
DASH = "\N{EN DASH}"  # as the pager writes a range
SIZE = 10


@pytest.fixture
def one_page_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "COUNT_AHEAD_PAGES", 1)


def _pager(html: str) -> str:
    found = re.search(r'<nav class="pagination".*?</nav>', html, re.S)
    assert found, "no pager on the page"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(0)).split())


def _runs() -> None:
    for i in range(ROWS):
        RunFactory(display_name=f"run-{i:02d}", state=RuntimeState.SUCCEEDED)


def _pipelines() -> None:
    for i in range(ROWS):
        PipelineFactory(name=f"pipeline-{i:02d}")


def _experiments() -> None:
    for i in range(ROWS):
        ExperimentFactory(display_name=f"experiment-{i:02d}")


def _artifacts() -> None:
    task = TaskFactory()
    for i in range(ROWS):
        ArtifactFactory(producer_task=task, name=f"artifact-{i:02d}")


def _schedules() -> None:
    for i in range(ROWS):
        RecurringRunFactory(display_name=f"schedule-{i:02d}")


def _executions() -> None:
    run = RunFactory()
    for i in range(ROWS):
        TaskFactory(run=run, name=f"task-{i:02d}")


LISTS: list[tuple[str, Callable[[], None]]] = [
    ("/runs/", _runs),
    ("/pipelines/", _pipelines),
    ("/experiments/", _experiments),
    ("/artifacts/", _artifacts),
    ("/recurring-runs/", _schedules),
    ("/executions/", _executions),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "build"), LISTS, ids=[u.strip("/") for u, _ in LISTS])
def test_a_list_counts_one_page_ahead_and_is_exact_at_its_end(
    logged_in: Any, one_page_ahead: None, url: str, build: Callable[[], None]
) -> None:
    build()

    def get(page: object) -> tuple[str, list[str]]:
        with CaptureQueriesContext(connection) as ctx:
            response = logged_in.get(url, {"page_size": SIZE, "page": page})
        assert response.status_code == 200
        counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
        return _pager(response.content.decode()), counts

    # Page 1 counts no further than page 2 (and one row more, to know there is more).
    pager, counts = get(1)
    assert pager.startswith(f"1{DASH}10 of more than 20"), pager
    assert "Page 1 /" not in pager and "Next" in pager and "Prev" not in pager
    assert any(re.search(r"LIMIT 21\b", sql) for sql in counts), counts
    # Page 2 counts to page 3: still more.
    pager, _ = get(2)
    assert pager.startswith(f"11{DASH}20 of more than 30") and "Next" in pager and "Prev" in pager
    # Page 3 counts to page 4, past the 35 rows: the total is exact.
    pager, _ = get(3)
    assert pager.startswith(f"21{DASH}30 of 35") and "Page 3 / 4" in pager and "Next" in pager
    # The last page, and a page past the end (the last page, as before).
    for page in (4, 99, 10**30, "9" * 400):
        pager, _ = get(page)
        assert pager.startswith(f"31{DASH}35 of 35"), (page, pager)
        assert "Page 4 / 4" in pager and "Next" not in pager, (page, pager)
    # A page below 1 or not a number is page 1, never an uncounted "last" page.
    for page in (0, -3, "-" + "9" * 400, "x", "2.5", "1e3", "nan", "inf", "1e309"):
        pager, _ = get(page)
        assert pager.startswith(f"1{DASH}10 of more than 20"), (page, pager)


@pytest.mark.django_db
@pytest.mark.parametrize("paginator", [BoundedPaginator, IdsFirstPaginator])
def test_paginator_bound_follows_the_page_asked_for(one_page_ahead: None, paginator: type[Any]) -> None:
    for i in range(ROWS):
        PipelineFactory(name=f"p-{i:02d}")
    qs = Pipeline.objects.order_by("name", "pk")
    names = list(qs.values_list("name", flat=True))

    first = paginator(qs, SIZE).get_page(1)
    assert [p.name for p in first] == names[:SIZE]
    assert first.paginator.exact is False and first.paginator.counted_to == 20
    assert first.paginator.count == 21 and first.has_next()

    # Asked for page 3 directly: counted to page 4, past the end, so exact.
    third = paginator(qs, SIZE).page(3)
    assert [p.name for p in third] == names[20:30]
    assert third.paginator.exact is True and third.paginator.count == ROWS
    assert third.paginator.num_pages == 4

    # A list that fits within the bound is exact from page 1.
    small = paginator(qs.filter(name__lt="p-15"), SIZE).get_page(1)
    assert small.paginator.exact is True and small.paginator.count == 15


def test_paginator_counts_a_plain_list_whole() -> None:
    page = BoundedPaginator(list(range(500)), SIZE).get_page(2)
    assert list(page) == list(range(10, 20))
    assert page.paginator.exact is True and page.paginator.count == 500
