"""List calls: filter predicates, sort_by, page_size and page tokens, as KFP's
server takes them; anything unknown or tampered with is a 400 that names it."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.choices import RuntimeState, StorageState
from apps.core.models import ApiToken
from apps.runs.models import Run
from tests.api.conftest import API
from tests.factories import ExperimentFactory, RecurringRunFactory, RunFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _f(*predicates: dict[str, Any]) -> str:
    return json.dumps({"predicates": list(predicates)})


@pytest.fixture
def runs() -> dict[str, Run]:
    """Five runs with known names, states and times (created one minute apart)."""
    experiment = ExperimentFactory(display_name="exp")
    made = {}
    specs = [
        ("alpha", RuntimeState.SUCCEEDED, StorageState.AVAILABLE),
        ("beta", RuntimeState.FAILED, StorageState.AVAILABLE),
        ("gamma", RuntimeState.SUCCEEDED, StorageState.ARCHIVED),
        ("delta", RuntimeState.RUNNING, StorageState.AVAILABLE),
        ("alphabet", RuntimeState.PENDING, StorageState.AVAILABLE),
    ]
    for i, (name, state, storage) in enumerate(specs):
        run = RunFactory(display_name=name, experiment=experiment, state=state, storage_state=storage)
        finished = T0 + timedelta(minutes=i, seconds=30) if state in RuntimeState.terminal() else None
        Run.objects.filter(pk=run.pk).update(created_at=T0 + timedelta(minutes=i), finished_at=finished)
        made[name] = Run.objects.get(pk=run.pk)
    return made


def names(api: APIClient, **params: Any) -> list[str]:
    response = api.get(f"{API}/runs", {"sort_by": "created_at", **params})
    assert response.status_code == 200, response.content
    return [r["display_name"] for r in response.json()["runs"]]


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        ({"operation": "EQUALS", "key": "display_name", "string_value": "ALPHA"}, ["alpha"]),
        ({"operation": 1, "key": "name", "stringValue": "GaMmA"}, ["gamma"]),
        (
            {"operation": "NOT_EQUALS", "key": "state", "stringValue": "SUCCEEDED"},
            ["beta", "delta", "alphabet"],
        ),
        ({"operation": 9, "key": "display_name", "stringValue": "ALPH"}, ["alpha", "alphabet"]),
        ({"operation": "IS_SUBSTRING", "key": "display_name", "stringValue": "%"}, []),
        ({"operation": "IS_SUBSTRING", "key": "display_name", "stringValue": "_"}, []),
        ({"operation": "GREATER_THAN", "key": "display_name", "stringValue": "beta"}, ["gamma", "delta"]),
        (
            {"operation": "IN", "key": "state", "string_values": {"values": ["failed", "RUNNING"]}},
            ["beta", "delta"],
        ),
        ({"operation": 8, "key": "display_name", "stringValues": {"values": ["beta"]}}, ["beta"]),
        ({"operation": "EQUALS", "key": "storage_state", "stringValue": "STORAGESTATE_ARCHIVED"}, ["gamma"]),
        # Times: RFC3339, or Unix seconds as an int or a long (a string); whole seconds, as KFP.
        (
            {"operation": "LESS_THAN", "key": "created_at", "timestamp_value": "2026-01-01T12:02:00Z"},
            ["alpha", "beta"],
        ),
        (
            {"operation": 7, "key": "created_at", "timestampValue": "2026-01-01T13:02:00+01:00"},
            ["alpha", "beta", "gamma"],
        ),
        (
            {
                "operation": "GREATER_THAN_EQUALS",
                "key": "created_at",
                "long_value": str(int(T0.timestamp()) + 180),
            },
            ["delta", "alphabet"],
        ),
        (
            {"operation": "GREATER_THAN", "key": "created_at", "int_value": int(T0.timestamp()) + 180},
            ["alphabet"],
        ),
        ({"operation": "EQUALS", "key": "created_at", "longValue": str(int(T0.timestamp()) + 60)}, ["beta"]),
        (
            {"operation": "IN", "key": "created_at", "long_values": {"values": [str(int(T0.timestamp()))]}},
            ["alpha"],
        ),
        (
            {"operation": "LESS_THAN", "key": "finished_at", "timestamp_value": "2026-01-01T12:01:31Z"},
            ["alpha", "beta"],
        ),
    ],
)
def test_filter_predicates(
    api: APIClient, runs: dict[str, Run], predicate: dict[str, Any], expected: list[str]
) -> None:
    assert names(api, filter=_f(predicate)) == expected


def test_filter_by_ids_and_several_predicates(api: APIClient, runs: dict[str, Run]) -> None:
    alpha, beta = runs["alpha"], runs["beta"]
    by_id = {"operation": "EQUALS", "key": "run_id", "stringValue": str(alpha.pk)}
    assert names(api, filter=_f(by_id)) == ["alpha"]
    ids = {"operation": "IN", "key": "id", "stringValues": {"values": [str(alpha.pk), str(beta.pk)]}}
    failed = {"operation": "EQUALS", "key": "state", "stringValue": "FAILED"}
    assert names(api, filter=_f(ids, failed)) == ["beta"]
    experiment = {"operation": "EQUALS", "key": "experiment_id", "stringValue": str(alpha.experiment_id)}
    assert len(names(api, filter=_f(experiment))) == 5
    assert names(api, filter=_f({"operation": "EQUALS", "key": "namespace", "stringValue": "DEFAULT"}))
    assert names(api, filter=json.dumps({"predicates": []})) == [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "alphabet",
    ]
    # A filter URL-encoded once more (KFP unescapes it again) is understood too.
    from urllib.parse import quote

    assert names(api, filter=quote(_f(failed))) == ["beta"]


@pytest.mark.parametrize(
    ("filter_", "message"),
    [
        (_f({"operation": "EQUALS", "key": "password", "stringValue": "x"}), "'password'"),
        (
            _f({"operation": "EQUALS", "key": "display_name); DROP TABLE runs_run; --", "stringValue": "x"}),
            "DROP",
        ),
        (
            _f({"operation": "EQUALS", "key": "pipeline_spec__root", "stringValue": "x"}),
            "pipeline_spec__root",
        ),
        (_f({"operation": "LIKE", "key": "display_name", "stringValue": "x"}), "unknown operation 'LIKE'"),
        (_f({"operation": 4, "key": "display_name", "stringValue": "x"}), "unknown operation 4"),
        (_f({"operation": True, "key": "display_name", "stringValue": "x"}), "unknown operation"),
        (_f({"operation": "EQUALS", "key": "display_name"}), "exactly one value"),
        (
            _f({"operation": "EQUALS", "key": "display_name", "stringValue": "a", "int_value": 1}),
            "exactly one",
        ),
        (_f({"operation": "EQUALS", "key": "display_name", "int_value": 1}), "string value"),
        (_f({"operation": "EQUALS", "key": "display_name", "stringValue": 5}), "expected a string"),
        (_f({"operation": "IN", "key": "state", "stringValue": "x"}), "IN takes a list"),
        (_f({"operation": "EQUALS", "key": "state", "stringValues": {"values": ["x"]}}), "single value"),
        (_f({"operation": "IN", "key": "state", "stringValues": {"values": []}}), "at least one value"),
        (_f({"operation": "IN", "key": "state", "stringValues": ["x"]}), "{'values': [...]}"),
        (_f({"operation": "EQUALS", "key": "run_id", "stringValue": "not-a-uuid"}), "not a valid id"),
        (_f({"operation": "GREATER_THAN", "key": "run_id", "stringValue": "0" * 32}), "equality"),
        (_f({"operation": "IS_SUBSTRING", "key": "created_at", "long_value": "1"}), "text keys only"),
        (_f({"operation": "EQUALS", "key": "created_at", "timestamp_value": "yesterday"}), "RFC3339"),
        (
            _f({"operation": "EQUALS", "key": "created_at", "timestamp_value": "2026-01-01T00:00:00"}),
            "time zone",
        ),
        (_f({"operation": "EQUALS", "key": "created_at", "long_value": "1e9"}), "expected an integer"),
        (_f({"operation": "EQUALS", "key": "created_at", "long_value": str(2**70)}), "int64"),
        (_f({"operation": "EQUALS", "key": "created_at", "int_value": 2**50}), "out of range"),
        (_f({"operation": "EQUALS", "key": "display_name", "stringValue": "a\x00b"}), "NUL"),
        (_f({"operation": "EQUALS", "key": "display_name", "stringValue": "x", "extra": 1}), "'extra'"),
        (_f("not an object"), "expected an object"),
        (json.dumps({"predicates": {"key": "x"}}), "must be a list"),
        (json.dumps({"predicate": []}), "unknown field 'predicate'"),
        (json.dumps([1]), "must be a JSON object"),
        ("{broken", "not valid JSON"),
        (
            json.dumps({"predicates": [{"operation": 1, "key": "state", "stringValue": "x"}] * 33}),
            "at most 32",
        ),
    ],
)
def test_bad_filters_are_400_and_say_why(
    api: APIClient, runs: dict[str, Run], filter_: str, message: str
) -> None:
    response = api.get(f"{API}/runs", {"filter": filter_})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == 3 and message in response.json()["message"]


@pytest.mark.parametrize(
    ("sort_by", "message"),
    [
        ("password", "cannot sort runs on key 'password'"),
        ("display_name; DROP TABLE runs_run", "invalid sort_by"),
        ("display_name sideways", "invalid sort_by"),
        ("pipeline_spec", "cannot sort"),
        ("-created_at", "cannot sort"),
    ],
)
def test_bad_sorts_are_400(api: APIClient, runs: dict[str, Run], sort_by: str, message: str) -> None:
    response = api.get(f"{API}/runs", {"sort_by": sort_by})
    assert response.status_code == 400 and message in response.json()["message"]


def test_sorting(api: APIClient, runs: dict[str, Run]) -> None:
    assert names(api, sort_by="display_name DESC") == ["gamma", "delta", "beta", "alphabet", "alpha"]
    assert names(api, sort_by="created_at desc")[0] == "alphabet"
    # The default is KFP's: created_at ascending.
    assert next(r["display_name"] for r in api.get(f"{API}/runs").json()["runs"]) == "alpha"
    # Nulls (unfinished runs) come first ascending and last descending.
    assert set(names(api, sort_by="finished_at")[:2]) == {"delta", "alphabet"}
    assert names(api, sort_by="finished_at")[2:] == ["alpha", "beta", "gamma"]
    assert set(names(api, sort_by="finished_at desc")[-2:]) == {"alphabet", "delta"}


@pytest.mark.parametrize(
    "sort_by", ["created_at", "created_at desc", "finished_at", "finished_at desc", "name", "state desc"]
)
def test_pages_cover_every_row_once(api: APIClient, runs: dict[str, Run], sort_by: str) -> None:
    # Ties on the sort key (same state, same created_at) are broken by the id.
    tied = RunFactory.create_batch(3, state=RuntimeState.SUCCEEDED)
    Run.objects.filter(pk__in=[r.pk for r in tied]).update(created_at=T0)
    expected = names(api, sort_by=sort_by, page_size=200)
    seen: list[str] = []
    token = ""
    for _ in range(10):
        response = api.get(f"{API}/runs", {"sort_by": sort_by, "page_size": 2, "page_token": token}).json()
        assert response["total_size"] == 8
        seen += [r["display_name"] for r in response["runs"]]
        token = response["next_page_token"]
        if not token:
            break
    assert seen == expected and len(seen) == 8


def test_page_token_keeps_the_filter_and_must_match_a_resent_one(
    api: APIClient, runs: dict[str, Run]
) -> None:
    succeeded = _f({"operation": "EQUALS", "key": "state", "stringValue": "SUCCEEDED"})
    first = api.get(f"{API}/runs", {"filter": succeeded, "page_size": 1}).json()
    assert first["total_size"] == 2
    second = api.get(f"{API}/runs", {"page_token": first["next_page_token"], "page_size": 1}).json()
    assert [r["display_name"] for r in second["runs"]] == ["gamma"] and second["next_page_token"] == ""
    same = api.get(
        f"{API}/runs", {"page_token": first["next_page_token"], "filter": succeeded, "sort_by": "created_at"}
    )
    assert same.status_code == 200
    other_filter = _f({"operation": "EQUALS", "key": "state", "stringValue": "FAILED"})
    refused = api.get(f"{API}/runs", {"page_token": first["next_page_token"], "filter": other_filter})
    assert refused.status_code == 400 and "another filter" in refused.json()["message"]
    refused = api.get(f"{API}/runs", {"page_token": first["next_page_token"], "sort_by": "name"})
    assert refused.status_code == 400 and "another sort_by" in refused.json()["message"]


def _tamper(token: str, **changes: Any) -> str:
    payload = json.loads(base64.urlsafe_b64decode(token))
    for key, value in changes.items():
        if key == "after_value":
            payload["after"]["value"] = value
        elif key == "after_pk":
            payload["after"]["pk"] = value
        else:
            payload[key] = value
    return base64.b64encode(json.dumps(payload).encode()).decode()


def test_tampered_page_tokens_are_400_never_sql(api: APIClient, runs: dict[str, Run]) -> None:
    token = api.get(f"{API}/runs", {"page_size": 1}).json()["next_page_token"]
    assert api.get(f"{API}/runs", {"page_token": token}).status_code == 200
    bad = [
        "garbage!!",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b"[1, 2]").decode(),
        _tamper(token, sort="display_name) OR 1=1 --"),
        _tamper(token, sort="pipeline_spec"),
        _tamper(token, sort="name"),  # an alias: tokens carry canonical keys only
        _tamper(token, desc="yes"),
        _tamper(token, resource="experiments"),
        _tamper(token, filter=[["display_name; DROP TABLE x", "EQUALS", "a"]]),
        _tamper(token, filter=[["display_name", "LIKE", "a"]]),
        _tamper(token, filter=[["created_at", "EQUALS", "1 OR 1=1"]]),
        _tamper(token, filter="EQUALS"),
        _tamper(token, after_value="2026-01-01"),  # naive time
        _tamper(token, after_value=5),
        _tamper(token, after_value=None),  # created_at is never null
        _tamper(token, after_pk="1 OR 1=1"),
        _tamper(token, extra=1),
    ]
    for page_token in bad:
        response = api.get(f"{API}/runs", {"page_token": page_token})
        assert response.status_code == 400, (page_token, response.content)
        assert response.json()["message"].startswith("invalid page_token")
    # A token for one resource is refused by another list.
    assert api.get(f"{API}/experiments", {"page_token": token}).status_code == 400


@pytest.mark.parametrize(
    ("page_size", "status", "count"),
    [("", 200, 20), ("0", 200, 20), ("3", 200, 3), ("500", 200, 25), ("-1", 400, 0), ("x", 400, 0)],
)
def test_page_size(api: APIClient, page_size: str, status: int, count: int) -> None:
    RunFactory.create_batch(25)
    response = api.get(f"{API}/runs", {"page_size": page_size})
    assert response.status_code == status
    if status == 200:
        assert len(response.json()["runs"]) == count and response.json()["total_size"] == 25


def test_other_lists_filter_and_sort_on_their_own_keys(api: APIClient) -> None:
    ExperimentFactory(display_name="one")
    ExperimentFactory(display_name="two", storage_state=StorageState.ARCHIVED)
    archived = _f({"operation": "EQUALS", "key": "storage_state", "stringValue": "ARCHIVED"})
    listed = api.get(f"{API}/experiments", {"filter": archived}).json()["experiments"]
    assert [e["display_name"] for e in listed] == ["two"]
    assert api.get(f"{API}/experiments", {"sort_by": "state"}).status_code == 400
    assert api.get(f"{API}/experiments", {"sort_by": "last_run_created_at desc"}).status_code == 200
    assert api.get(f"{API}/pipelines", {"sort_by": "storage_state"}).status_code == 400
    RecurringRunFactory(display_name="nightly")
    RecurringRunFactory(display_name="hourly")
    by_name = api.get(f"{API}/recurringruns", {"sort_by": "display_name"}).json()["recurringRuns"]
    assert [r["display_name"] for r in by_name] == ["hourly", "nightly"]
    assert api.get(f"{API}/recurringruns", {"sort_by": "finished_at"}).status_code == 400


def test_runs_list_at_page_size_200_uses_a_constant_number_of_queries(api: APIClient) -> None:
    def count_queries() -> int:
        # The token's last_used_at is written at most once a minute: keep it fresh
        # so that write never lands inside one of the measured requests.
        ApiToken.objects.update(last_used_at=timezone.now())
        with CaptureQueriesContext(connection) as queries:
            response = api.get(f"{API}/runs", {"page_size": 200, "sort_by": "created_at desc"})
        assert response.status_code == 200
        return len(queries)

    RunFactory.create_batch(3)
    few = count_queries()
    RunFactory.create_batch(250)
    many = count_queries()
    assert many == few
    assert many <= 6  # token, namespace, count, page (+ savepoints on some backends)
    assert len(api.get(f"{API}/runs", {"page_size": 200}).json()["runs"]) == 200
