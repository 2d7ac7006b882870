"""Keyset pages of the list API at a few hundred rows: every row exactly once across
pages whatever the sort key and direction (with many ties), total_size counted once
and carried by the token, and a fixed number of queries per page however deep the
page and however many rows there are."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.listing import RUNS
from apps.core.choices import RuntimeState, StorageState
from apps.core.models import ApiToken
from apps.runs.models import Run
from tests.api.conftest import API
from tests.factories import ExperimentFactory, RunFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
STATES = [RuntimeState.SUCCEEDED, RuntimeState.FAILED, RuntimeState.RUNNING]
#: Every canonical key runs can be sorted on (aliases name the same keys).
SORT_KEYS = sorted({key.name for key in RUNS.keys.values()})


def make_runs(n: int) -> list[uuid.UUID]:
    """``n`` runs in two experiments with heavy ties: 7 creation times, 5 names,
    3 states, finished_at null for one group in 7, a few archived."""
    first = RunFactory()
    other = ExperimentFactory(namespace=first.namespace)
    rows = [
        Run(
            namespace=first.namespace,
            experiment=first.experiment if i % 2 else other,
            pipeline_version=first.pipeline_version,
            pipeline_spec={},
            display_name=f"run {i % 5}",
            state=STATES[i % 3],
            storage_state=StorageState.ARCHIVED if i % 11 == 0 else StorageState.AVAILABLE,
        )
        for i in range(n - 1)
    ]
    Run.objects.bulk_create(rows)
    ids = [first.pk, *(r.pk for r in rows)]
    for group in range(7):
        finished = None if group == 3 else T0 + timedelta(hours=group % 4)
        Run.objects.filter(pk__in=ids[group::7]).update(
            created_at=T0 + timedelta(minutes=group), finished_at=finished
        )
    return ids


def walk(api: APIClient, page_size: int, **params: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Every page of a list, following the tokens: (ids in order, the responses)."""
    ids: list[str] = []
    pages: list[dict[str, Any]] = []
    token = ""
    for _ in range(1000):
        response = api.get(f"{API}/runs", {**params, "page_size": page_size, "page_token": token})
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append(body)
        ids += [r["run_id"] for r in body.get("runs", [])]
        token = body.get("next_page_token", "")
        if not token:
            return ids, pages
        params = {}  # the token carries the sort and the filter
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("key", SORT_KEYS)
def test_pages_return_every_row_once_under_every_sort(api: APIClient, key: str, descending: bool) -> None:
    made = {str(pk) for pk in make_runs(60)}
    sort_by = f"{key} desc" if descending else key
    whole, _ = walk(api, 200, sort_by=sort_by)
    paged, pages = walk(api, 7, sort_by=sort_by)
    assert len(paged) == len(set(paged)) == 60 and set(paged) == made
    assert paged == whole  # the same order as one big page
    assert {page["total_size"] for page in pages} == {60}


def test_filtered_pages_return_every_matching_row_once(api: APIClient) -> None:
    make_runs(90)
    failed = json.dumps({"predicates": [{"operation": "EQUALS", "key": "state", "string_value": "FAILED"}]})
    expected = {str(pk) for pk in Run.objects.filter(state=RuntimeState.FAILED).values_list("pk", flat=True)}
    paged, pages = walk(api, 4, sort_by="display_name desc", filter=failed)
    assert len(paged) == len(set(paged)) and set(paged) == expected
    assert {page["total_size"] for page in pages} == {len(expected)}


def test_total_size_is_counted_on_the_first_page_and_carried(api: APIClient) -> None:
    make_runs(30)
    first = api.get(f"{API}/runs", {"page_size": 10}).json()
    assert first["total_size"] == 30
    RunFactory.create_batch(2)  # created while the client pages: the total stays the first page's
    second = api.get(f"{API}/runs", {"page_token": first["next_page_token"], "page_size": 10}).json()
    assert second["total_size"] == 30
    assert api.get(f"{API}/runs", {"page_size": 10}).json()["total_size"] == 32  # a new listing counts


def _payload(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))))


def _token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def test_a_token_without_a_total_counts_again_and_a_bad_total_is_refused(api: APIClient) -> None:
    make_runs(12)
    token = api.get(f"{API}/runs", {"page_size": 5}).json()["next_page_token"]
    payload = _payload(token)
    assert payload["total"] == 12
    del payload["total"]  # as tokens were before the total was carried
    page = api.get(f"{API}/runs", {"page_token": _token(payload), "page_size": 5}).json()
    assert page["total_size"] == 12 and _payload(page["next_page_token"])["total"] == 12
    for bad in (-1, "12", True, 2**64, 1.5):
        response = api.get(f"{API}/runs", {"page_token": _token({**payload, "total": bad})})
        assert response.status_code == 400, bad
        assert response.json()["message"].startswith("invalid page_token")


def test_a_token_is_refused_for_another_sort_or_filter(api: APIClient) -> None:
    make_runs(12)
    token = api.get(f"{API}/runs", {"page_size": 5, "sort_by": "display_name desc"}).json()["next_page_token"]
    for other in ({"sort_by": "display_name"}, {"sort_by": "created_at desc"}):
        response = api.get(f"{API}/runs", {"page_token": token, **other})
        assert response.status_code == 400 and "another sort_by" in response.json()["message"]
    running = json.dumps({"predicates": [{"operation": "EQUALS", "key": "state", "string_value": "RUNNING"}]})
    response = api.get(f"{API}/runs", {"page_token": token, "filter": running})
    assert response.status_code == 400 and "another filter" in response.json()["message"]
    assert api.get(f"{API}/runs", {"page_token": token, "sort_by": "name desc"}).status_code == 200


def _queries_per_page(api: APIClient, sort_by: str, pages: int) -> list[int]:
    counts = []
    token = ""
    for _ in range(pages):
        # The token's last_used_at is written at most once a minute: keep it fresh so
        # that write never lands inside a measured request.
        ApiToken.objects.update(last_used_at=timezone.now())
        with CaptureQueriesContext(connection) as queries:
            body = api.get(f"{API}/runs", {"sort_by": sort_by, "page_size": 20, "page_token": token}).json()
        counts.append(len(queries))
        token = body["next_page_token"]
        assert token
    return counts


@pytest.mark.parametrize("sort_by", ["created_at desc", "display_name", "finished_at desc"])
def test_queries_per_page_do_not_grow_with_depth_or_rows(api: APIClient, sort_by: str) -> None:
    make_runs(100)
    few = _queries_per_page(api, sort_by, 4)
    Run.objects.bulk_create(
        [
            Run(namespace=r.namespace, experiment=r.experiment, pipeline_spec={}, display_name=f"more {i}")
            for i, r in enumerate([Run.objects.first()] * 900)
            if r is not None
        ]
    )
    many = _queries_per_page(api, sort_by, 4)
    # Page 1 counts the rows once; every later page is the same queries without it.
    assert few[0] == few[1] + 1
    assert len(set(few[1:])) == 1
    assert many == few
