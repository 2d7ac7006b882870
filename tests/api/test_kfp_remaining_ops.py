"""The eight KFP v2beta1 operations Canal added to serve all 40 of KFP's swagger:
CreatePipeline, UpdatePipeline, UpdatePipelineVersion, Authorize, GetFilter,
ReportWorkflow, ReportScheduledWorkflow and CreateVisualizationV1."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.core.models import Membership
from apps.core.services import api_token_create
from apps.pipelines.models import Pipeline, PipelineVersion
from tests.api.conftest import API, upload
from tests.factories import UserFactory
from tests.hardening.hostile import row_counts

pytestmark = pytest.mark.django_db


def _client_for(role: str, namespace: Any = None) -> APIClient:
    user = UserFactory(username=f"the-{role}", namespace=namespace, namespace__role=role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(actor=user, user=user)[1]}")
    return client


def _error(response: Any, status: int, code: int, *words: str) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["details"] == []
    for word in words:
        assert word in body["message"], body["message"]
    return body["message"]


# --- CreatePipeline -------------------------------------------------------------------------


def test_create_pipeline_makes_a_pipeline_without_a_version(api: APIClient) -> None:
    response = api.post(
        f"{API}/pipelines",
        {"display_name": "Empty one", "description": "no versions yet", "namespace": "default"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["display_name"] == "Empty one" and body["name"] == "Empty one"
    assert body["description"] == "no versions yet" and body["namespace"] == "default"
    pipeline = Pipeline.objects.get(pk=body["pipeline_id"])
    assert pipeline.versions.count() == 0
    # It has no versions (the upload test below adds one).
    listed = api.get(f"{API}/pipelines/{pipeline.pk}/versions").json()
    assert (listed["pipeline_versions"], listed["total_size"]) == ([], 0)


def test_create_pipeline_names_and_refusals(api: APIClient, hello_yaml: bytes) -> None:
    named = api.post(f"{API}/pipelines", {"name": "by-name", "displayName": "Shown"}, format="json").json()
    assert (named["name"], named["display_name"]) == ("by-name", "Shown")
    before = row_counts()
    _error(api.post(f"{API}/pipelines", {}, format="json"), 400, 3, "name or a display_name")
    _error(api.post(f"{API}/pipelines", {"name": "by-name"}, format="json"), 409, 6, "already exists")
    _error(api.post(f"{API}/pipelines", {"name": 7}, format="json"), 400, 3, "name must be a string")
    _error(
        api.post(f"{API}/pipelines", {"name": "t", "tags": {"a": 1}}, format="json"),
        400,
        3,
        "tags must be a JSON object of strings",
    )
    _error(api.post(f"{API}/pipelines", {"name": "x", "namespace": "team-b"}, format="json"), 404, 5)
    assert row_counts() == before
    # tags of strings are accepted (checked, not stored), as the upload endpoint does.
    tagged = api.post(f"{API}/pipelines", {"name": "tagged", "tags": {"team": "ml"}}, format="json")
    assert tagged.status_code == 200 and "tags" not in tagged.json()
    # Uploading a version to the empty pipeline works.
    added = upload(api, hello_yaml, "pipelines/upload_version", pipelineid=named["pipeline_id"], name="v1")
    assert added.status_code == 200, added.content


def test_create_pipeline_needs_the_editor_role(db: Any) -> None:
    viewer = _client_for(Membership.Role.VIEWER)
    before = row_counts()
    _error(viewer.post(f"{API}/pipelines", {"name": "nope"}, format="json"), 403, 7, "editor role")
    assert row_counts() == before
    editor = _client_for(Membership.Role.EDITOR)
    assert editor.post(f"{API}/pipelines", {"name": "yes"}, format="json").status_code == 200


def test_session_writes_need_csrf(csrf_client: Client) -> None:
    refused = csrf_client.post(f"{API}/pipelines", {"name": "p"}, content_type="application/json")
    assert refused.status_code == 403 and not Pipeline.objects.filter(name="p").exists()
    csrf = "k" * 32
    csrf_client.cookies["csrftoken"] = csrf
    accepted = csrf_client.post(
        f"{API}/pipelines", {"name": "p"}, content_type="application/json", HTTP_X_CSRFTOKEN=csrf
    )
    assert accepted.status_code == 200
    pipeline_id = accepted.json()["pipeline_id"]
    patched = csrf_client.patch(
        f"{API}/pipelines/{pipeline_id}", {"display_name": "q"}, content_type="application/json"
    )
    assert patched.status_code == 403 and Pipeline.objects.get(pk=pipeline_id).display_name == "p"


# --- UpdatePipeline / UpdatePipelineVersion -----------------------------------------------------


def test_patch_changes_only_the_display_name(api: APIClient, hello_yaml: bytes) -> None:
    created = upload(api, hello_yaml, name="patched").json()
    pid = created["pipeline_id"]
    response = api.patch(
        f"{API}/pipelines/{pid}",
        {"display_name": "New shown name", "name": "ignored", "description": "ignored", "tags": {}},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["display_name"], body["name"], body.get("description", "")) == (
        "New shown name",
        "patched",
        "",
    )
    stored = Pipeline.objects.get(pk=pid)
    assert (stored.display_name, stored.name) == ("New shown name", "patched")
    # An empty display_name changes nothing (KFP: unset fields are not updated).
    assert api.patch(f"{API}/pipelines/{pid}", {}, format="json").json()["display_name"] == "New shown name"

    version = PipelineVersion.objects.get(pipeline_id=pid)
    url = f"{API}/pipelines/{pid}/versions/{version.pk}"
    response = api.patch(url, {"displayName": "Version shown"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["display_name"] == "Version shown" and response.json()["name"] == "patched"
    version.refresh_from_db()
    assert (version.display_name, version.name) == ("Version shown", "patched")


def test_patch_refusals_write_nothing(api: APIClient, hello_yaml: bytes, other_namespace: Any) -> None:
    pid = upload(api, hello_yaml, name="kept").json()["pipeline_id"]
    version = PipelineVersion.objects.get(pipeline_id=pid)
    bob = _client_for(Membership.Role.OWNER, other_namespace)
    viewer = _client_for(Membership.Role.VIEWER)
    before = row_counts()

    def names() -> tuple[str, str]:
        return (
            Pipeline.objects.get(pk=pid).display_name,
            PipelineVersion.objects.get(pk=version.pk).display_name,
        )

    kept = names()
    _error(
        api.patch(f"{API}/pipelines/{pid}", {"display_name": "x", "tags": {"a": "b"}}, format="json"),
        400,
        3,
        "does not store tags",
    )
    _error(
        api.patch(f"{API}/pipelines/{pid}", {"display_name": ["x"]}, format="json"), 400, 3, "display_name"
    )
    _error(
        api.patch(f"{API}/pipelines/{pid}", {"display_name": "a\x01b"}, format="json"), 400, 3, "display_name"
    )
    _error(api.patch(f"{API}/pipelines/{pid}", [1], format="json"), 400, 3, "JSON object")
    _error(api.patch(f"{API}/pipelines/not-an-id", {"display_name": "x"}, format="json"), 404, 5)
    _error(api.patch(f"{API}/pipelines/{pid}/versions/{pid}", {"display_name": "x"}, format="json"), 404, 5)
    # A pipeline of another namespace is not found; its own members' roles decide.
    _error(bob.patch(f"{API}/pipelines/{pid}", {"display_name": "x"}, format="json"), 404, 5)
    _error(
        viewer.patch(f"{API}/pipelines/{pid}", {"display_name": "x"}, format="json"), 403, 7, "editor role"
    )
    _error(
        viewer.patch(f"{API}/pipelines/{pid}/versions/{version.pk}", {"display_name": "x"}, format="json"),
        403,
        7,
    )
    assert row_counts() == before and names() == kept


# --- Authorize ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Membership.Role.VIEWER, {"GET"}),
        (Membership.Role.EDITOR, {"GET", "CREATE"}),
        (Membership.Role.OWNER, {"GET", "CREATE", "DELETE"}),
    ],
)
def test_authorize_answers_from_the_role(role: str, allowed: set[str]) -> None:
    client = _client_for(role)
    for verb in ("GET", "CREATE", "DELETE"):
        response = client.get(f"{API}/auth", {"namespace": "default", "resources": "VIEWERS", "verb": verb})
        if verb in allowed:
            assert response.status_code == 200 and response.json() == {}, (verb, response.content)
        else:
            needs = {"CREATE": "editor", "DELETE": "owner"}[verb]
            _error(response, 403, 7, f"{role}s of namespace 'default'", f"the {needs} role")
    # Enum numbers are read as grpc-gateway reads them (1 = VIEWERS, 2 = GET).
    assert client.get(f"{API}/auth?namespace=default&resources=1&verb=2").status_code == 200


def test_authorize_refusals(api: APIClient, anon: APIClient, other_namespace: Any, staff_user: Any) -> None:
    query = {"namespace": "default", "resources": "VIEWERS", "verb": "GET"}
    assert anon.get(f"{API}/auth", query).status_code == 401
    _error(api.get(f"{API}/auth", {**query, "namespace": ""}), 400, 3, "namespace is empty")
    _error(
        api.get(f"{API}/auth", {**query, "resources": "UNASSIGNED_RESOURCES"}), 400, 3, "resources must be"
    )
    _error(
        api.get(f"{API}/auth", {**query, "verb": "UPDATE"}), 400, 3, "verb must be one of GET, CREATE, DELETE"
    )
    _error(api.get(f"{API}/auth", {k: v for k, v in query.items() if k != "verb"}), 400, 3, "verb")
    _error(api.get(f"{API}/auth", {**query, "namespace": "team-b"}), 404, 5, "not found")
    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(actor=staff_user, user=staff_user)[1]}")
    assert admin.get(f"{API}/auth", {**query, "namespace": "team-b", "verb": "DELETE"}).status_code == 200


# --- Filters, reports, visualizations -----------------------------------------------------------


def test_filters_answers_an_empty_filter(api: APIClient, anon: APIClient) -> None:
    assert api.get(f"{API}/filters").json() == {}
    assert anon.get(f"{API}/filters").status_code == 401


@pytest.mark.parametrize(
    ("path", "method"), [("workflows", "ReportWorkflow"), ("scheduledworkflows", "ReportScheduledWorkflow")]
)
def test_report_methods_are_unimplemented(api: APIClient, anon: APIClient, path: str, method: str) -> None:
    before = row_counts()
    workflow = json.dumps(
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}}
    )
    # The body is one JSON string, as grpc-gateway maps a string field named as the body.
    response = api.post(f"{API}/{path}", json.dumps(workflow), content_type="application/json")
    _error(response, 501, 12, f"ReportService.{method} is not implemented", "persistence agent")
    _error(api.post(f"{API}/{path}", {"workflow": {}}, format="json"), 400, 3, "must be a JSON string")
    _error(api.post(f"{API}/{path}", b"[", content_type="application/json"), 400, 3)
    assert anon.post(f"{API}/{path}", json.dumps("{}"), content_type="application/json").status_code == 401
    assert api.get(f"{API}/{path}").status_code == 405
    assert row_counts() == before


def test_visualizations_are_unimplemented(api: APIClient, other_namespace: Any) -> None:
    before = row_counts()
    body = {"type": "TABLE", "source": "gs://b/x.csv", "arguments": "{}"}
    _error(api.post(f"{API}/visualizations/default", body, format="json"), 501, 12, "Python visualizations")
    _error(api.post(f"{API}/visualizations/default", {"type": 3}, format="json"), 501, 12)
    _error(api.post(f"{API}/visualizations/default", {"type": "PIE"}, format="json"), 400, 3, "type must be")
    _error(api.post(f"{API}/visualizations/default", {"source": 1}, format="json"), 400, 3, "source")
    _error(api.post(f"{API}/visualizations/team-b", body, format="json"), 404, 5, "team-b")
    assert row_counts() == before


# --- Uploads: KFP's code_source_url query parameter ---------------------------------------------


def test_uploads_record_code_source_url(api: APIClient, hello_yaml: bytes) -> None:
    url = "https://example.com/src/pipeline.py"
    pipeline = upload(api, hello_yaml, name="with-source", code_source_url=url).json()
    assert PipelineVersion.objects.get(pipeline_id=pipeline["pipeline_id"]).code_source_url == url
    version = upload(
        api, hello_yaml, "pipelines/upload_version", pipelineid=pipeline["pipeline_id"], code_source_url=url
    ).json()
    assert version["code_source_url"] == url
    before = row_counts()
    refused = upload(api, hello_yaml, name="bad-source", code_source_url="file:///etc/passwd")
    assert refused.status_code == 400 and "code_source_url" in refused.json()["error_message"]
    assert row_counts() == before
