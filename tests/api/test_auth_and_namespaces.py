"""Who may call the API: bearer tokens and sessions (with CSRF), 401 for everyone
else except healthz, and 404 for every object in a namespace the caller is not in.

The routes are read from apps.api.urls, so a new endpoint is checked without
anyone remembering to add it here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern
from rest_framework.test import APIClient

from apps.api import urls as api_urls
from apps.core.choices import RuntimeState
from apps.core.models import ApiToken
from apps.core.services import api_token_create, api_token_revoke
from tests.api.conftest import API, upload
from tests.factories import (
    ExperimentFactory,
    PipelineVersionFactory,
    RecurringRunFactory,
    RunFactory,
    TaskFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

PUBLIC = {"healthz"}
NOT_AN_OBJECT = {"not-found", "openapi", "docs"}
UPLOADS = {"pipeline-upload", "version-upload"}


def _patterns() -> list[URLPattern]:
    return [p for p in api_urls.urlpatterns if isinstance(p, URLPattern)]


def _methods(pattern: URLPattern) -> list[str]:
    view = pattern.callback.view_class  # type: ignore[attr-defined]
    return [m for m in ("get", "post", "patch", "delete") if hasattr(view, m)]


def _fill(pattern: URLPattern, values: dict[str, str]) -> str:
    route = str(pattern.pattern)
    return f"{API}/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)


def test_every_route_but_healthz_answers_401_without_credentials(anon: APIClient) -> None:
    values = {name: str(uuid.uuid4()) for name in ("pipeline_id", "pipeline_version_id", "experiment_id")}
    values |= {name: str(uuid.uuid4()) for name in ("run_id", "recurring_run_id", "node_id", "task_id")}
    values |= {"name": "x", "artifact_name": "x", "unknown": "some/path", "namespace": "default"}
    checked = 0
    for pattern in _patterns():
        for method in _methods(pattern):
            for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer nothing"}, {"HTTP_AUTHORIZATION": "Bearer"}):
                response = getattr(anon, method)(_fill(pattern, values), **headers)
                if pattern.name in PUBLIC:
                    assert response.status_code == 200, pattern.name
                    continue
                assert response.status_code == 401, (pattern.name, method, headers)
                if pattern.name in UPLOADS:
                    assert response.json()["error_message"], pattern.name
                elif pattern.name != "docs":  # an HTML page
                    assert response.json()["code"] == 16, (pattern.name, method, response.content)
                checked += 1
    assert checked > 90


def test_healthz_reports_the_server(anon: APIClient) -> None:
    body = anon.get(f"{API}/healthz").json()
    assert set(body) == {"commit_sha", "tag_name", "multi_user", "pipeline_store"}
    assert body["multi_user"] is False and body["pipeline_store"] == "database"


def test_unknown_and_revoked_tokens_are_refused(user: Any, anon: APIClient) -> None:
    token_row, token = api_token_create(actor=user, user=user)
    ok = anon.get(f"{API}/experiments", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert ok.status_code == 200
    assert ApiToken.objects.get(pk=token_row.pk).last_used_at is not None
    for header in (f"Bearer {token}x", "Bearer canal_", f"Token {token}", f"Bearer {token} extra"):
        assert anon.get(f"{API}/experiments", HTTP_AUTHORIZATION=header).status_code == 401, header
    api_token_revoke(actor=user, token=token_row)
    refused = anon.get(f"{API}/experiments", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")


def test_inactive_users_tokens_are_refused(user: Any, anon: APIClient) -> None:
    token = api_token_create(actor=user, user=user)[1]
    user.is_active = False
    user.save()
    assert anon.get(f"{API}/experiments", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_session_requests_need_csrf_for_writes_bearer_requests_do_not(
    csrf_client: Client, api: APIClient
) -> None:
    assert csrf_client.get(f"{API}/experiments").status_code == 200
    refused = csrf_client.post(f"{API}/experiments", {"display_name": "e"}, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["message"]
    csrf = "k" * 32  # a CSRF secret, sent as the cookie and echoed in the header, as browsers do
    csrf_client.cookies["csrftoken"] = csrf
    accepted = csrf_client.post(
        f"{API}/experiments", {"display_name": "e"}, content_type="application/json", HTTP_X_CSRFTOKEN=csrf
    )
    assert accepted.status_code == 200, accepted.content
    assert api.post(f"{API}/experiments", {"display_name": "f"}, format="json").status_code == 200


def test_no_get_changes_anything(api: APIClient) -> None:
    experiment = ExperimentFactory()
    for action in ("archive", "unarchive"):
        assert api.get(f"{API}/experiments/{experiment.pk}:{action}").status_code == 405
    run = RunFactory(state=RuntimeState.RUNNING)
    for action in ("terminate", "retry", "archive", "unarchive"):
        assert api.get(f"{API}/runs/{run.pk}:{action}").status_code == 405
    run.refresh_from_db()
    assert run.state == RuntimeState.RUNNING and run.storage_state == "AVAILABLE"


@pytest.fixture
def foreign(other_namespace: Any, tmp_path: Any) -> dict[str, str]:
    """One of everything in team-b, which alice is not a member of."""
    version = PipelineVersionFactory(pipeline__namespace=other_namespace, pipeline__name="secret")
    experiment = ExperimentFactory(namespace=other_namespace)
    run = RunFactory(
        namespace=other_namespace, experiment=experiment, pipeline_version=version, state=RuntimeState.FAILED
    )
    task = TaskFactory(run=run, name="step", key="root/step", outputs={"artifacts": {"out": [{"id": "1"}]}})
    recurring = RecurringRunFactory(
        namespace=other_namespace, experiment=experiment, pipeline_version=version
    )
    return {
        "pipeline_id": str(version.pipeline_id),
        "pipeline_version_id": str(version.pk),
        "experiment_id": str(experiment.pk),
        "run_id": str(run.pk),
        "node_id": str(task.pk),
        "task_id": str(task.pk),
        "artifact_name": "out",
        "recurring_run_id": str(recurring.pk),
        "name": "secret",
        "namespace": other_namespace.name,
        "unknown": "x",
    }


def test_every_object_route_is_404_for_another_namespace(api: APIClient, foreign: dict[str, str]) -> None:
    checked = 0
    for pattern in _patterns():
        route = str(pattern.pattern)
        if pattern.name in PUBLIC | NOT_AN_OBJECT or "<" not in route:
            continue
        for method in _methods(pattern):
            response = getattr(api, method)(_fill(pattern, foreign), format="json")
            assert response.status_code == 404, (pattern.name, method, response.content)
            checked += 1
    assert checked >= 20
    # Nothing was changed by the refused calls.
    from apps.runs.models import Run

    run = Run.objects.get(pk=foreign["run_id"])
    assert run.state == RuntimeState.FAILED and run.storage_state == "AVAILABLE"


def test_namespace_parameter_is_checked_against_membership(
    api: APIClient, foreign: dict[str, str], hello_yaml: bytes
) -> None:
    for path in ("pipelines", "experiments", "runs", "recurringruns", "pipelines/names/secret"):
        response = api.get(f"{API}/{path}", {"namespace": "team-b"})
        assert response.status_code == 404, path
        assert "team-b" in response.json()["message"]
    assert (
        api.post(
            f"{API}/experiments", {"display_name": "x", "namespace": "team-b"}, format="json"
        ).status_code
        == 404
    )
    refused = upload(api, hello_yaml, name="mine", namespace="team-b")
    assert refused.status_code == 404 and "error_message" in refused.json()
    refused = upload(api, hello_yaml, path="pipelines/upload_version", pipelineid=foreign["pipeline_id"])
    assert refused.status_code == 404 and "error_message" in refused.json()
    # Creating a run in their experiment, or from their pipeline, is refused the same way.
    body = {"display_name": "r", "experiment_id": foreign["experiment_id"], "pipeline_spec": {}}
    assert api.post(f"{API}/runs", body, format="json").status_code == 404
    body = {"display_name": "r", "pipeline_version_reference": {"pipeline_id": foreign["pipeline_id"]}}
    assert api.post(f"{API}/runs", body, format="json").status_code == 404
    assert api.get(f"{API}/runs", {"experiment_id": foreign["experiment_id"]}).status_code == 404


def test_members_and_staff_see_the_namespace(foreign: dict[str, str]) -> None:
    for user in (UserFactory(username="bob"), UserFactory(username="root", is_staff=True)):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(actor=user, user=user)[1]}")
        listed = client.get(f"{API}/runs", {"namespace": "team-b"}).json()
        assert [r["run_id"] for r in listed["runs"]] == [foreign["run_id"]]
        assert client.get(f"{API}/runs/{foreign['run_id']}").status_code == 200


def test_a_user_without_namespaces_is_told_so(anon: APIClient) -> None:
    loner = UserFactory(username="loner")
    loner.namespaces.clear()
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(actor=loner, user=loner)[1]}")
    response = anon.get(f"{API}/experiments")
    assert response.status_code == 404 and "not a member of any namespace" in response.json()["message"]
