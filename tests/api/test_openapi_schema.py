"""The OpenAPI document: it validates, the Swagger UI page is served from local
files, and schemathesis finds no server error on any endpoint.

The schemathesis run is bounded and deterministic: at most MAX_EXAMPLES generated
requests per operation, derandomized (a fixed seed), no example database.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from django.test import Client
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.core.authz import OPERATOR
from apps.core.services import api_token_create
from tests.api.conftest import API
from tests.api.unimplemented import is_documented_unimplemented
from tests.factories import UserFactory

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.django_db
def test_schema_is_valid_openapi_and_describes_every_endpoint(api: APIClient) -> None:
    response = api.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate_schema(document)  # against the official OpenAPI JSON Schema (raises if invalid)
    paths = set(document["paths"])
    for expected in (
        "/apis/v2beta1/healthz",
        "/apis/v2beta1/pipelines/upload",
        "/apis/v2beta1/pipelines/upload_version",
        "/apis/v2beta1/pipelines/create",
        "/apis/v2beta1/runs/{run_id}:terminate",
        "/apis/v2beta1/runs/{run_id}/nodes/{node_id}/artifacts/{artifact_name}:read",
        "/apis/v2beta1/recurringruns/{recurring_run_id}:disable",
    ):
        assert expected in paths
    listed = document["components"]["schemas"]["ListRecurringRuns"]["properties"]
    assert "recurringRuns" in listed
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth", "cookieAuth"}


@pytest.mark.django_db
def test_swagger_ui_is_served_from_installed_files(logged_in: Client) -> None:
    page = logged_in.get(f"{API}/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    # Installed files, and the page's own script (served by the view, under the page's CSP).
    own_script = f"{API}/docs/?script="
    assert sources and all(src.startswith("/static/") or src == own_script for src in sources), sources
    assert "cdn" not in html.lower()
    for src in sources:
        response = logged_in.get(src)
        assert response.status_code == 200, src
        body = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
        assert body, src
    script = logged_in.get(f"{API}/docs/?script=").content.decode()
    assert f"{API}/openapi.json" in script


# --- schemathesis --------------------------------------------------------------------------


@pytest.fixture
def schema_token(transactional_db: Any) -> str:
    return api_token_create(actor=OPERATOR, user=UserFactory(username="fuzzer"), name="schemathesis")[1]


def _operation_failures(operation: Any, base_url: str, token: str, calls: list[int]) -> str | None:
    """Run one operation's bounded, derandomized examples (valid and invalid data);
    the first failure's report, or None."""
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    def examples(case: Any) -> None:
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        calls.append(response.status_code)
        if is_documented_unimplemented(operation, response.status_code, response.content):
            case.validate_response(response, checks=[c for c in CHECKS if c is not not_a_server_error])
        else:
            case.validate_response(response, checks=CHECKS)

    try:
        examples()
    except Exception as exc:  # a failed check, with the request that caused it
        return f"{operation.label}: {exc}"
    return None


@pytest.mark.live
@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(live_server: Any, schema_token: str) -> None:
    """Every operation of the served document, against the live server with a token."""
    schema = schemathesis.openapi.from_url(
        f"{live_server.url}{API}/openapi.json", headers={"Authorization": f"Bearer {schema_token}"}
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 34
    calls: list[int] = []
    failures = [
        failure
        for operation in operations
        if (failure := _operation_failures(operation, live_server.url, schema_token, calls)) is not None
    ]
    assert not failures, "\n\n".join(failures)
    assert len(calls) > 10 * len(operations)  # the examples were really sent
    assert 500 not in calls
