"""PipelineService and PipelineUploadService at the HTTP level."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from apps.pipelines.models import Pipeline, PipelineVersion
from tests.api.conftest import API, upload
from tests.factories import HELLO_IR_TEXT, PipelineVersionFactory, RunFactory

pytestmark = pytest.mark.django_db

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$")
HELLO_SPEC = yaml.safe_load(HELLO_IR_TEXT)
PLATFORM = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {}}}}}


def test_upload_creates_a_pipeline_with_its_first_version(api: APIClient, hello_yaml: bytes) -> None:
    response = upload(api, hello_yaml, name="hello", description="says hello", display_name="Hello!")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"pipeline_id", "display_name", "name", "description", "created_at", "namespace"}
    assert body["name"] == "hello" and body["display_name"] == "Hello!" and body["namespace"] == "default"
    assert RFC3339_Z.match(body["created_at"])
    pipeline = Pipeline.objects.get(pk=body["pipeline_id"])
    assert pipeline.versions.get().source == HELLO_IR_TEXT


def test_upload_without_a_name_uses_the_pipeline_name_and_omits_empty_fields(
    api: APIClient, hello_yaml: bytes
) -> None:
    body = upload(api, hello_yaml).json()
    assert body["name"] == "hello" and "description" not in body


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (b"{not: [yaml", "p.yaml", "yaml"),
        (b"just a string", "p.yaml", ""),
        (b"\x00\x01\x02", "p.zip", ""),
        (b"a: !!python/object/apply:os.system ['id']", "p.yaml", ""),
    ],
)
def test_refused_uploads_use_the_upload_error_body(
    api: APIClient, data: bytes, filename: str, expected: str
) -> None:
    response = upload(api, data, filename=filename, name="bad")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error_message", "error_details"}
    assert body["error_message"] and expected in body["error_message"].lower()
    assert body["error_details"].startswith("uploadfile: ")
    assert not Pipeline.objects.exists()


def test_duplicate_pipeline_name_is_409(api: APIClient, hello_yaml: bytes) -> None:
    assert upload(api, hello_yaml, name="same").status_code == 200
    response = upload(api, hello_yaml, name="same")
    assert response.status_code == 409
    assert "already exists" in response.json()["error_message"]


def test_upload_needs_exactly_one_uploadfile(api: APIClient, hello_yaml: bytes) -> None:
    response = api.post(f"{API}/pipelines/upload?name=x", {"file": b"x"}, format="multipart")
    assert response.status_code == 400 and "uploadfile" in response.json()["error_message"]
    response = api.post(f"{API}/pipelines/upload", {"name": "x"}, format="json")
    assert response.status_code == 415 and "error_message" in response.json()


def test_upload_larger_than_the_limit_is_refused(api: APIClient, hello_yaml: bytes, settings: Any) -> None:
    settings.CANAL_MAX_UPLOAD_BYTES = 100
    response = upload(api, hello_yaml + b"#" * 200, name="big")
    assert response.status_code == 400 and "larger than 100 bytes" in response.json()["error_message"]


def test_upload_tags_must_be_a_json_map(api: APIClient, hello_yaml: bytes) -> None:
    assert upload(api, hello_yaml, name="t1", tags='{"team": "ml"}').status_code == 200
    response = upload(api, hello_yaml, name="t2", tags="[1]")
    assert response.status_code == 400 and response.json()["error_details"].startswith("tags: ")


def test_upload_version(api: APIClient, hello_yaml: bytes) -> None:
    pipeline_id = upload(api, hello_yaml, name="p").json()["pipeline_id"]
    response = upload(api, hello_yaml, path="pipelines/upload_version", name="v2", pipelineid=pipeline_id)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["pipeline_id"] == pipeline_id and body["name"] == body["display_name"] == "v2"
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "hello"
    again = upload(api, hello_yaml, path="pipelines/upload_version", name="v2", pipelineid=pipeline_id)
    assert again.status_code == 409
    missing = upload(api, hello_yaml, path="pipelines/upload_version", name="v3")
    assert missing.status_code == 400 and missing.json()["error_message"] == "pipelineid is required"
    unknown = upload(api, hello_yaml, path="pipelines/upload_version", pipelineid="nope")
    assert unknown.status_code == 404


def test_get_list_and_get_by_name(api: APIClient, hello_yaml: bytes) -> None:
    ids = [upload(api, hello_yaml, name=f"p{i}").json()["pipeline_id"] for i in range(3)]
    listed = api.get(f"{API}/pipelines", {"sort_by": "name desc"}).json()
    assert [p["name"] for p in listed["pipelines"]] == ["p2", "p1", "p0"]
    assert listed["total_size"] == 3 and listed["next_page_token"] == ""
    assert api.get(f"{API}/pipelines/{ids[0]}").json()["name"] == "p0"
    assert api.get(f"{API}/pipelines/names/p1").json()["pipeline_id"] == ids[1]
    assert api.get(f"{API}/pipelines/names/nope").status_code == 404
    assert api.get(f"{API}/pipelines/not-a-uuid").status_code == 404
    empty = api.get(
        f"{API}/pipelines",
        {
            "filter": json.dumps(
                {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": "none"}]}
            )
        },
    ).json()
    assert empty == {"pipelines": [], "total_size": 0, "next_page_token": ""}


def test_delete_needs_cascade_while_versions_exist(api: APIClient, hello_yaml: bytes) -> None:
    pipeline_id = upload(api, hello_yaml, name="p").json()["pipeline_id"]
    refused = api.delete(f"{API}/pipelines/{pipeline_id}")
    assert refused.status_code == 400 and "cascade" in refused.json()["message"]
    assert refused.json()["code"] == 9  # FAILED_PRECONDITION
    assert api.delete(f"{API}/pipelines/{pipeline_id}?cascade=maybe").status_code == 400
    assert api.delete(f"{API}/pipelines/{pipeline_id}?cascade=true").json() == {}
    assert not Pipeline.objects.filter(pk=pipeline_id).exists()


def test_delete_is_refused_while_runs_use_the_pipeline(api: APIClient) -> None:
    run = RunFactory()
    version = run.pipeline_version
    response = api.delete(f"{API}/pipelines/{version.pipeline_id}?cascade=true")
    assert response.status_code == 400 and "run" in response.json()["message"]
    response = api.delete(f"{API}/pipelines/{version.pipeline_id}/versions/{version.pk}")
    assert response.status_code == 400
    assert PipelineVersion.objects.filter(pk=version.pk).exists()


def test_versions_list_get_delete(api: APIClient, hello_yaml: bytes) -> None:
    pipeline_id = upload(api, hello_yaml, name="p").json()["pipeline_id"]
    for name in ("v2", "v3"):
        upload(api, hello_yaml, path="pipelines/upload_version", name=name, pipelineid=pipeline_id)
    page = api.get(f"{API}/pipelines/{pipeline_id}/versions", {"sort_by": "created_at desc", "page_size": 2})
    body = page.json()
    assert [v["name"] for v in body["pipeline_versions"]] == ["v3", "v2"]
    assert "pipeline_spec" not in body["pipeline_versions"][0]  # lists leave the spec out
    assert body["total_size"] == 3 and body["next_page_token"]
    rest = api.get(f"{API}/pipelines/{pipeline_id}/versions", {"page_token": body["next_page_token"]}).json()
    assert [v["name"] for v in rest["pipeline_versions"]] == ["p"]
    version_id = body["pipeline_versions"][0]["pipeline_version_id"]
    got = api.get(f"{API}/pipelines/{pipeline_id}/versions/{version_id}").json()
    assert got["pipeline_spec"] == HELLO_SPEC
    other = PipelineVersionFactory()
    assert api.get(f"{API}/pipelines/{pipeline_id}/versions/{other.pk}").status_code == 404
    assert api.delete(f"{API}/pipelines/{pipeline_id}/versions/{version_id}").json() == {}
    assert api.get(f"{API}/pipelines/{pipeline_id}/versions/{version_id}").status_code == 404


def test_create_pipeline_and_version_from_a_spec(api: APIClient) -> None:
    body = {
        "pipeline": {"display_name": "From spec", "name": "from-spec", "description": "d"},
        "pipeline_version": {"pipeline_spec": {"pipeline_spec": HELLO_SPEC, "platform_spec": PLATFORM}},
    }
    response = api.post(f"{API}/pipelines/create", body, format="json")
    assert response.status_code == 200, response.content
    created = response.json()
    assert created["name"] == "from-spec" and created["display_name"] == "From spec"
    version = Pipeline.objects.get(pk=created["pipeline_id"]).versions.get()
    assert version.platform_spec == PLATFORM
    got = api.get(f"{API}/pipelines/{created['pipeline_id']}/versions/{version.pk}").json()
    assert got["pipeline_spec"] == {"pipeline_spec": HELLO_SPEC, "platform_spec": PLATFORM}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"pipeline": {"name": "x"}}, "pipeline_spec is required"),
        (
            {"pipeline_version": {"package_url": {"pipeline_url": "http://169.254.169.254/"}}},
            "does not fetch",
        ),
        ({"pipeline_version": {"pipeline_spec": {"root": {}}}}, ""),
        ({"pipeline_version": {"pipeline_spec": "text"}}, "must be a JSON object"),
        ({"pipeline": {"name": 5}, "pipeline_version": {"pipeline_spec": HELLO_SPEC}}, "must be a string"),
        ({"pipeline": [], "pipeline_version": {}}, "must be a JSON object"),
        (
            {"pipeline_version": {"pipeline_spec": HELLO_SPEC, "code_source_url": "javascript:alert(1)"}},
            "http(s) URL",
        ),
    ],
)
def test_create_from_spec_errors(api: APIClient, body: dict[str, Any], message: str) -> None:
    response = api.post(f"{API}/pipelines/create", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message", "details"} and response.json()["code"] == 3
    assert message in response.json()["message"]
    assert not Pipeline.objects.exists()


def test_create_version_from_a_spec(api: APIClient, hello_yaml: bytes) -> None:
    pipeline_id = upload(api, hello_yaml, name="p").json()["pipeline_id"]
    body = {"name": "v-json", "pipeline_spec": HELLO_SPEC, "code_source_url": "https://example.com/p.py"}
    response = api.post(f"{API}/pipelines/{pipeline_id}/versions", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "v-json"
    assert response.json()["code_source_url"] == "https://example.com/p.py"


def test_camel_case_fields_are_accepted(api: APIClient) -> None:
    body = {"pipeline": {"displayName": "Camel"}, "pipelineVersion": {"pipelineSpec": HELLO_SPEC}}
    response = api.post(f"{API}/pipelines/create", body, format="json")
    assert response.status_code == 200 and response.json()["display_name"] == "Camel"


def test_malformed_json_body_is_400(api: APIClient) -> None:
    response = api.post(f"{API}/pipelines/create", "{nope", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == 3
    response = api.post(f"{API}/pipelines/create", '{"a": NaN}', content_type="application/json")
    assert response.status_code == 400
