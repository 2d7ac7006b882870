"""Real answers of every operation against Canal's own OpenAPI document, strictly.

Each operation of the served document is called with real data (and once with a bad
id or body), and every answer is validated with jsonschema against the schema the
document gives for its status code. Strictly: an object schema that lists properties
allows no others, so a field the code writes and the serializer does not declare (a
drift between the two) fails, as does a wrong type, enum value or time format.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from rest_framework.test import APIClient

from apps.core.choices import RuntimeState
from tests.api.conftest import API, upload
from tests.factories import HELLO_IR_TEXT, RunFactory
from tests.runs.test_rerun_service import _origin as failed_run_with_a_spec

pytestmark = pytest.mark.django_db
HELLO_SPEC = yaml.safe_load(HELLO_IR_TEXT)
METHODS = ("get", "post", "put", "patch", "delete")


def _strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists properties."""
    if isinstance(schema, dict):
        strict = {key: _strict(value) for key, value in schema.items()}
        if "properties" in strict and "additionalProperties" not in strict:
            strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


class Document:
    """The served document; ``check`` validates one answer and records its operation."""

    def __init__(self, api: APIClient) -> None:
        self.raw = api.get(f"{API}/openapi.json").json()
        self.components = _strict(copy.deepcopy(self.raw["components"]))
        self.checked: dict[tuple[str, str], set[int]] = {}

    def operations(self) -> set[tuple[str, str]]:
        return {
            (method, path) for path, item in self.raw["paths"].items() for method in item if method in METHODS
        }

    def check(self, method: str, template: str, response: Any) -> Any:
        operation = self.raw["paths"][template][method]
        status = response.status_code
        assert str(status) in operation["responses"], (method, template, status, response.content)
        content = operation["responses"][str(status)].get("content") or {}
        media = response["Content-Type"].split(";")[0]
        assert media in content, (method, template, status, media, list(content))
        if media == "application/json":
            body = response.json()
            schema = {"components": self.components, **_strict(content[media]["schema"])}
            errors = sorted(
                Draft4Validator(schema, format_checker=FormatChecker()).iter_errors(body), key=str
            )
            assert not errors, (
                f"{method.upper()} {template} {status}: {errors[0].message} at {list(errors[0].path)}"
            )
        self.checked.setdefault((method, template), set()).add(status)
        return response.json() if media == "application/json" else response.content


@pytest.fixture
def doc(api: APIClient) -> Document:
    return Document(api)


def test_a_drift_between_serializer_and_answer_fails(doc: Document) -> None:
    """The check itself: an undeclared field, a wrong type or a bad time is caught."""
    schema = {"components": doc.components, "$ref": "#/components/schemas/Run"}
    validator = Draft4Validator(schema, format_checker=FormatChecker())
    validator.validate({"run_id": "r", "state": "RUNNING", "created_at": "2030-01-01T00:00:00Z"})
    for drifted in ({"run_id": "r", "runId": "r"}, {"run_id": 5}, {"state": "BUSY"}, {"created_at": "soon"}):
        with pytest.raises(ValidationError):
            validator.validate(drifted)


def test_every_operation_answers_as_its_document_says(
    api: APIClient, doc: Document, hello_yaml: bytes, run_with_tasks: Any
) -> None:
    def call(method: str, template: str, url: str, body: Any = None, **kwargs: Any) -> Any:
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        return doc.check(method, template, getattr(api, method)(f"{API}{url}", **kwargs))

    missing = "00000000-0000-0000-0000-000000000000"
    call("get", "/apis/v2beta1/healthz", "/healthz")
    call("get", "/apis/v2beta1/filters", "/filters")
    call(
        "get",
        "/apis/v2beta1/auth",
        "/auth",
        data={"namespace": "default", "resources": "VIEWERS", "verb": "GET"},
    )
    call("get", "/apis/v2beta1/auth", "/auth", data={"namespace": ""})

    # Pipelines and versions.
    p = "/apis/v2beta1/pipelines"
    pipeline = doc.check("post", f"{p}/upload", upload(api, hello_yaml, name="hello", description="d"))
    doc.check("post", f"{p}/upload", upload(api, b"not: [a pipeline", name="broken"))
    pid = pipeline["pipeline_id"]
    version = doc.check(
        "post",
        f"{p}/upload_version",
        upload(api, hello_yaml, "pipelines/upload_version", pipelineid=pid, name="v2"),
    )
    doc.check("post", f"{p}/upload_version", upload(api, hello_yaml, "pipelines/upload_version"))
    vid = version["pipeline_version_id"]
    call("post", p, "/pipelines", {"display_name": "empty", "tags": {"team": "a"}})
    call("post", p, "/pipelines", {"name": 7})
    created = call(
        "post",
        f"{p}/create",
        "/pipelines/create",
        {"pipeline": {"name": "made"}, "pipeline_version": {"pipeline_spec": HELLO_SPEC}},
    )
    call("post", f"{p}/create", "/pipelines/create", {"pipeline": {"name": "made2"}})
    call("get", p, "/pipelines")
    call("get", p, "/pipelines", data={"page_size": "x"})
    call("get", f"{p}/names/{{name}}", "/pipelines/names/hello")
    call("get", f"{p}/names/{{name}}", "/pipelines/names/nothing")
    call("get", f"{p}/{{pipeline_id}}", f"/pipelines/{pid}")
    call("get", f"{p}/{{pipeline_id}}", f"/pipelines/{missing}")
    call("patch", f"{p}/{{pipeline_id}}", f"/pipelines/{pid}", {"displayName": "Hello"})
    call("patch", f"{p}/{{pipeline_id}}", f"/pipelines/{pid}", {"tags": {"a": "b"}})
    versions = f"{p}/{{pipeline_id}}/versions"
    v3 = call("post", versions, f"/pipelines/{pid}/versions", {"name": "v3", "pipeline_spec": HELLO_SPEC})
    call("post", versions, f"/pipelines/{pid}/versions", {"name": "v4", "pipeline_spec": "text"})
    call("get", versions, f"/pipelines/{pid}/versions")
    call("get", versions, f"/pipelines/{missing}/versions")
    one = f"{versions}/{{pipeline_version_id}}"
    call("get", one, f"/pipelines/{pid}/versions/{vid}")
    call("get", one, f"/pipelines/{pid}/versions/{missing}")
    call("patch", one, f"/pipelines/{pid}/versions/{vid}", {"display_name": "second"})
    call("patch", one, f"/pipelines/{pid}/versions/{vid}", {"display_name": 1})

    # Experiments.
    e = "/apis/v2beta1/experiments"
    experiment = call("post", e, "/experiments", {"display_name": "exp", "description": "x"})
    call("post", e, "/experiments", {"display_name": ["x"]})
    eid = experiment["experiment_id"]
    call("get", e, "/experiments")
    call("get", f"{e}/{{experiment_id}}", f"/experiments/{eid}")
    call("get", f"{e}/{{experiment_id}}", f"/experiments/{missing}")

    # Runs: created from a version and inline, a finished one with tasks, actions.
    r = "/apis/v2beta1/runs"
    reference = {"pipeline_id": pid, "pipeline_version_id": vid}
    run = call(
        "post",
        r,
        "/runs",
        {"display_name": "r1", "experiment_id": eid, "pipeline_version_reference": reference},
    )
    call(
        "post",
        r,
        "/runs",
        {"displayName": "r2", "pipelineSpec": HELLO_SPEC, "runtimeConfig": {"parameters": {}}},
    )
    call("post", r, "/runs", {"display_name": "r3"})
    call("get", r, "/runs")
    call("get", r, "/runs", data={"experiment_id": eid})
    finished = str(run_with_tasks.run.pk)
    call("get", f"{r}/{{run_id}}", f"/runs/{finished}")
    call("get", f"{r}/{{run_id}}", f"/runs/{run['run_id']}")
    call("get", f"{r}/{{run_id}}", f"/runs/{missing}")
    node = f"{r}/{{run_id}}/nodes/{{node_id}}"
    call(
        "get", f"{node}/artifacts/{{artifact_name}}:read", f"/runs/{finished}/nodes/writer/artifacts/out:read"
    )
    call(
        "get",
        f"{node}/artifacts/{{artifact_name}}:read",
        f"/runs/{finished}/nodes/writer/artifacts/none:read",
    )
    call("get", f"{node}/log", f"/runs/{finished}/nodes/writer/log")
    call("get", f"{node}/log", f"/runs/{finished}/nodes/nobody/log")
    rerun = f"{r}/{{run_id}}/tasks/{{task_id}}:rerun"
    failed = str(failed_run_with_a_spec().pk)
    call("post", rerun, f"/runs/{failed}/tasks/b:rerun", {"parameters": {"v": 7}, "includeDownstream": True})
    call("post", rerun, f"/runs/{failed}/tasks/b:rerun", {"include_downstream": "yes"})
    running = str(RunFactory(state=RuntimeState.RUNNING, namespace=run_with_tasks.run.namespace).pk)
    call("post", f"{r}/{{run_id}}:terminate", f"/runs/{running}:terminate")
    call("post", f"{r}/{{run_id}}:retry", f"/runs/{failed}:retry")
    call("post", f"{r}/{{run_id}}:retry", f"/runs/{missing}:retry")
    call("post", f"{r}/{{run_id}}:archive", f"/runs/{finished}:archive")
    call("post", f"{r}/{{run_id}}:unarchive", f"/runs/{finished}:unarchive")

    # Recurring runs.
    rr = "/apis/v2beta1/recurringruns"
    periodic = {"periodic_schedule": {"interval_second": "3600", "start_time": "2030-01-01T00:00:00Z"}}
    recurring = call(
        "post",
        rr,
        "/recurringruns",
        {
            "display_name": "every hour",
            "experiment_id": eid,
            "pipeline_version_reference": reference,
            "runtime_config": {"parameters": {}},
            "trigger": periodic,
            "max_concurrency": 2,
        },
    )
    call(
        "post",
        rr,
        "/recurringruns",
        {
            "display_name": "cron",
            "pipeline_spec": HELLO_SPEC,
            "trigger": {"cron_schedule": {"cron": "0 9 * * *"}},
        },
    )
    call(
        "post", rr, "/recurringruns", {"display_name": "x", "pipeline_spec": HELLO_SPEC, "mode": "SOMETIMES"}
    )
    call("get", rr, "/recurringruns")
    rid = recurring["recurring_run_id"]
    call("get", f"{rr}/{{recurring_run_id}}", f"/recurringruns/{rid}")
    call("get", f"{rr}/{{recurring_run_id}}", f"/recurringruns/{missing}")
    call("post", f"{rr}/{{recurring_run_id}}:disable", f"/recurringruns/{rid}:disable")
    call("post", f"{rr}/{{recurring_run_id}}:enable", f"/recurringruns/{rid}:enable")

    # Not implemented in Canal: 501, or 400 for a malformed body.
    call("post", "/apis/v2beta1/workflows", "/workflows", "{}")
    call("post", "/apis/v2beta1/workflows", "/workflows", {"workflow": {}})
    call("post", "/apis/v2beta1/scheduledworkflows", "/scheduledworkflows", "{}")
    call("post", "/apis/v2beta1/visualizations/{namespace}", "/visualizations/default", {"type": "TABLE"})
    call("post", "/apis/v2beta1/visualizations/{namespace}", "/visualizations/default", {"type": "PIE"})

    # Deletes last.
    call("delete", f"{rr}/{{recurring_run_id}}", f"/recurringruns/{rid}")
    call("delete", f"{r}/{{run_id}}", f"/runs/{finished}")
    call("delete", f"{r}/{{run_id}}", f"/runs/{run['run_id']}")
    call("delete", f"{r}/{{run_id}}", f"/runs/{missing}")
    call("post", f"{e}/{{experiment_id}}:archive", f"/experiments/{eid}:archive")
    call("post", f"{e}/{{experiment_id}}:unarchive", f"/experiments/{eid}:unarchive")
    call("delete", f"{e}/{{experiment_id}}", f"/experiments/{eid}")
    empty = call("post", e, "/experiments", {"display_name": "empty"})
    call("delete", f"{e}/{{experiment_id}}", f"/experiments/{empty['experiment_id']}")
    call("delete", one, f"/pipelines/{pid}/versions/{vid}")
    call("delete", one, f"/pipelines/{pid}/versions/{v3['pipeline_version_id']}")
    call("delete", f"{p}/{{pipeline_id}}", f"/pipelines/{created['pipeline_id']}?cascade=true")
    call("delete", f"{p}/{{pipeline_id}}", f"/pipelines/{pid}?cascade=maybe")

    assert set(doc.checked) == doc.operations(), doc.operations() - set(doc.checked)
    without_a_200 = sorted(
        f"{method.upper()} {path}: {sorted(statuses)}"
        for (method, path), statuses in doc.checked.items()
        if 200 not in statuses and "200" in doc.raw["paths"][path][method]["responses"]
    )
    assert not without_a_200, without_a_200
