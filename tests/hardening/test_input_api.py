"""Issue 9, "no 500s from input", through the REST API: each finding is a 400 whose
message names the field, and nothing is written."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.core.authz import OPERATOR
from apps.core.exceptions import InvalidInput
from apps.core.services import api_token_create, namespace_ensure
from apps.runs.models import Run
from apps.runs.services import run_create
from apps.schedules.models import RecurringRun
from tests.factories import (
    ExperimentFactory,
    PipelineVersionFactory,
    RecurringRunFactory,
    RunFactory,
    UserFactory,
)

from .hostile import (
    END_OF_TIME,
    HUGE_UNIX_SECONDS,
    NEGATIVE_UNIX_SECONDS,
    SURROGATE,
    TYPED_SPEC,
    YEAR_ONE,
    deep_json,
    raw_json,
    row_counts,
    typed_version,
)

pytestmark = pytest.mark.django_db
API = "/apis/v2beta1"


@pytest.fixture
def api(db: Any) -> APIClient:
    user = UserFactory(username="alice")
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_token_create(actor=OPERATOR, user=user, name='hardening')[1]}"
    )
    return client


def post_raw(api: APIClient, path: str, body: bytes) -> Any:
    return api.generic("POST", f"{API}/{path}", body, content_type="application/json")


def refused(response: Any, *names: str) -> str:
    """The message of a KFP-style 400 that names every one of ``names``."""
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    message = response.json()["message"]
    for name in names:
        assert name in message, message
    return message


# --- A lone surrogate -------------------------------------------------------------------


def test_a_surrogate_in_a_run_parameter_is_refused_and_no_run_is_written(api: APIClient) -> None:
    version = typed_version()
    before = row_counts()
    body = {
        "display_name": "wedge",
        "pipeline_version_reference": {
            "pipeline_id": str(version.pipeline_id),
            "pipeline_version_id": str(version.pk),
        },
        "runtime_config": {"parameters": {"text": SURROGATE}},
    }
    message = refused(post_raw(api, "runs", raw_json(body)), "runtime_config.parameters.text", "surrogate")
    assert "\\ud800" in message  # shown escaped: the answer itself must encode
    assert row_counts() == before
    # The listing and a run's page keep working for everyone.
    assert api.get(f"{API}/runs").status_code == 200
    run = RunFactory()
    assert api.get(f"{API}/runs/{run.pk}").status_code == 200


def test_the_run_service_refuses_it_too_whatever_the_caller() -> None:
    # The management command, the scheduler and the UI call run_create directly.
    version = typed_version()
    with pytest.raises(InvalidInput) as err:
        run_create(
            namespace=namespace_ensure(actor=OPERATOR),
            actor=OPERATOR,
            display_name="direct",
            pipeline_version=version,
            parameters={"tags": ["ok", f"x{SURROGATE}"]},
        )
    assert err.value.field == "parameters.tags" and "surrogate" in err.value.message
    assert Run.objects.count() == 0


def _bodies() -> list[tuple[str, Any, str]]:
    """(API path, JSON body with a surrogate, the field the answer must name)."""
    return [
        ("experiments", {"display_name": SURROGATE}, "display_name"),
        ("experiments", {"display_name": "ok", "description": f"a{SURROGATE}b"}, "description"),
        (
            "pipelines/create",
            {"pipeline": {"display_name": SURROGATE}, "pipeline_version": {"pipeline_spec": TYPED_SPEC}},
            "pipeline.display_name",
        ),
        (
            "pipelines/create",
            {"pipeline": {"name": f"p{SURROGATE}"}, "pipeline_version": {"pipeline_spec": TYPED_SPEC}},
            "pipeline.name",
        ),
        (
            "pipelines/create",
            {
                "pipeline": {"name": "p"},
                "pipeline_version": {"pipeline_spec": {**TYPED_SPEC, "pipelineInfo": {"name": SURROGATE}}},
            },
            "pipeline_version.pipeline_spec.pipelineInfo.name",
        ),
        ("runs", {"display_name": SURROGATE, "pipeline_spec": TYPED_SPEC}, "display_name"),
        ("runs", {"display_name": "r", "pipeline_spec": TYPED_SPEC, SURROGATE: 1}, "surrogate"),
        (
            "recurringruns",
            {
                "display_name": SURROGATE,
                "pipeline_spec": TYPED_SPEC,
                "trigger": {"periodic_schedule": {"interval_second": 60}},
            },
            "display_name",
        ),
        (
            "recurringruns",
            {
                "display_name": "r",
                "pipeline_spec": TYPED_SPEC,
                "trigger": {"cron_schedule": {"cron": f"* * * * *{SURROGATE}"}},
            },
            "trigger.cron_schedule.cron",
        ),
    ]


@pytest.mark.parametrize(("path", "body", "field"), _bodies(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_surrogate_in_any_body_field_is_a_400_naming_it(
    api: APIClient, path: str, body: Any, field: str
) -> None:
    before = row_counts()
    refused(post_raw(api, path, raw_json(body)), field, "surrogate")
    assert row_counts() == before


def test_a_surrogate_in_a_new_versions_name_is_refused(api: APIClient) -> None:
    version = PipelineVersionFactory()
    before = row_counts()
    body = {"name": f"v{SURROGATE}", "pipeline_spec": TYPED_SPEC}
    refused(post_raw(api, f"pipelines/{version.pipeline_id}/versions", raw_json(body)), "name", "surrogate")
    assert row_counts() == before


# --- Deep JSON ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["experiments", "runs", "recurringruns", "pipelines/create", "pipelines/{pipeline}/versions"]
)
def test_json_nested_100000_deep_is_a_400_naming_the_limit(api: APIClient, path: str) -> None:
    version = PipelineVersionFactory()
    before = row_counts()
    response = post_raw(api, path.format(pipeline=version.pipeline_id), deep_json())
    refused(response, "nested deeper than 100 levels")
    assert row_counts() == before


def test_a_deep_struct_parameter_is_refused_naming_it(api: APIClient) -> None:
    nested: Any = 1
    for _ in range(150):
        nested = {"k": nested}
    body = {
        "display_name": "deep",
        "pipeline_spec": TYPED_SPEC,
        "runtime_config": {"parameters": {"config": nested}},
    }
    refused(
        post_raw(api, "runs", raw_json(body)), "runtime_config.parameters.config", "nested deeper than 100"
    )
    assert Run.objects.count() == 0


def test_a_deep_tags_query_parameter_on_upload_is_a_400(api: APIClient) -> None:
    from io import BytesIO

    handle = BytesIO(b"irrelevant")
    handle.name = "p.yaml"
    response = api.post(
        f"{API}/pipelines/upload?tags={'[' * 5000}", {"uploadfile": handle}, format="multipart"
    )
    assert response.status_code == 400
    assert "tags" in response.json()["error_message"] and "nested deeper" in response.json()["error_message"]


# --- Filters and page tokens -----------------------------------------------------------

LISTS = ["runs", "experiments", "pipelines", "recurringruns", "pipelines/{pipeline}/versions"]
OUT_OF_RANGE = [
    ({"int_value": HUGE_UNIX_SECONDS}, str(HUGE_UNIX_SECONDS)),
    ({"long_value": str(NEGATIVE_UNIX_SECONDS)}, str(NEGATIVE_UNIX_SECONDS)),
    ({"int_value": NEGATIVE_UNIX_SECONDS}, str(NEGATIVE_UNIX_SECONDS)),
    ({"timestamp_value": END_OF_TIME}, "9999-12-31"),
    ({"timestamp_value": YEAR_ONE}, "0001-01-01"),
    ({"timestamp_value": "9999-12-31T23:59:59-01:00"}, "9999-12-31"),
]


def _filter(**predicate: Any) -> str:
    return json.dumps({"predicates": [{"operation": "GREATER_THAN", "key": "created_at", **predicate}]})


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(("value", "shown"), OUT_OF_RANGE, ids=lambda v: str(v))
def test_out_of_range_time_filters_are_a_400_naming_the_key(
    api: APIClient, path: str, value: Any, shown: str
) -> None:
    version = PipelineVersionFactory()
    response = api.get(f"{API}/{path.format(pipeline=version.pipeline_id)}", {"filter": _filter(**value)})
    refused(response, "created_at", shown, "out of range")


@pytest.mark.parametrize("path", LISTS)
def test_in_range_time_filters_still_work(api: APIClient, path: str) -> None:
    version = PipelineVersionFactory()
    for value in ({"int_value": 0}, {"timestamp_value": "8999-12-31T23:59:59Z"}):
        response = api.get(f"{API}/{path.format(pipeline=version.pipeline_id)}", {"filter": _filter(**value)})
        assert response.status_code == 200, response.content


@pytest.mark.parametrize("path", LISTS)
def test_a_surrogate_or_deep_json_in_a_filter_is_a_400(api: APIClient, path: str) -> None:
    version = PipelineVersionFactory()
    url = f"{API}/{path.format(pipeline=version.pipeline_id)}"
    text_filter = json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "string_value": SURROGATE}]}
    )
    refused(api.get(url, {"filter": text_filter}), "filter", "string_value", "surrogate")
    refused(api.get(url, {"filter": "[" * 20_000}), "filter", "nested deeper")


def _token(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize(
    "payload",
    [
        {
            "resource": "runs",
            "sort": "display_name",
            "desc": False,
            "filter": [],
            "after": {"value": SURROGATE, "pk": "00000000-0000-0000-0000-000000000001"},
        },
        {
            "resource": "runs",
            "sort": "created_at",
            "desc": False,
            "filter": [["created_at", "GREATER_THAN", HUGE_UNIX_SECONDS]],
            "after": {"value": None, "pk": "00000000-0000-0000-0000-000000000001"},
        },
        {
            "resource": "runs",
            "sort": "created_at",
            "desc": False,
            "filter": [],
            "after": {"value": "9999-12-31T23:59:59+00:00", "pk": "00000000-0000-0000-0000-000000000001"},
        },
    ],
    ids=["surrogate-cursor", "time-filter", "time-cursor"],
)
def test_a_tampered_page_token_is_a_400(api: APIClient, payload: Any) -> None:
    RunFactory.create_batch(2)
    refused(api.get(f"{API}/runs", {"page_token": _token(payload)}), "page_token")


# --- Recurring run times ----------------------------------------------------------------


def _recurring(trigger: dict[str, Any]) -> dict[str, Any]:
    return {"display_name": "times", "pipeline_spec": TYPED_SPEC, "trigger": trigger}


@pytest.mark.parametrize(
    ("trigger", "field", "why"),
    [
        (
            {"periodic_schedule": {"interval_second": 60, "start_time": END_OF_TIME}},
            "start_time",
            "out of range",
        ),
        ({"cron_schedule": {"cron": "0 * * * *", "start_time": END_OF_TIME}}, "start_time", "out of range"),
        ({"periodic_schedule": {"interval_second": 60, "end_time": YEAR_ONE}}, "end_time", "out of range"),
        ({"cron_schedule": {"cron": "0 * * * *", "end_time": YEAR_ONE}}, "end_time", "out of range"),
        (
            {"periodic_schedule": {"interval_second": 60, "end_time": "2001-01-01T00:00:00Z"}},
            "end_time",
            "passed",
        ),
        (
            {
                "periodic_schedule": {
                    "interval_second": 60,
                    "start_time": "2100-01-01T00:00:00Z",
                    "end_time": "2099-01-01T00:00:00Z",
                }
            },
            "end_time",
            "after the start",
        ),
    ],
)
def test_recurring_run_times_out_of_bounds_are_a_400(
    api: APIClient, trigger: Any, field: str, why: str
) -> None:
    before = row_counts()
    refused(api.post(f"{API}/recurringruns", _recurring(trigger), format="json"), field, why)
    assert row_counts() == before
    assert not RecurringRun.objects.exists()


def test_a_recurring_run_far_ahead_but_in_range_is_accepted(api: APIClient) -> None:
    trigger = {
        "periodic_schedule": {"interval_second": 100 * 365 * 86400, "start_time": "8999-12-31T23:59:59Z"}
    }
    response = api.post(f"{API}/recurringruns", _recurring(trigger), format="json")
    assert response.status_code == 200, response.content
    assert RecurringRun.objects.get().next_fire_time.year == 9099


# --- Parameter types --------------------------------------------------------------------

WRONG_TYPES = [
    ("text", None, "expects a string, got null"),
    ("text", 5, "expects a string, got 5"),
    ("text", True, "expects a string, got true"),
    ("text", ["a"], "expects a string"),
    ("count", None, "expects an integer, got null"),
    ("count", "three", "expects an integer"),
    ("count", 2.5, "expects an integer"),
    ("count", 2**63, "fits in 64 bits"),
    ("count", True, "expects an integer"),
    ("rate", "fast", "expects a finite number"),
    ("rate", 10**400, "expects a finite number"),
    ("rate", "1e400", "expects a finite number"),
    ("verbose", "maybe", "expects true or false"),
    ("verbose", 1, "expects true or false"),
    ("tags", {"a": 1}, "expects a JSON list"),
    ("tags", "[1, 2", "not valid JSON"),
    ("tags", "[" * 5000, "nested deeper"),
    ("config", [1], "expects a JSON object"),
    ("config", '{"k": "\\u0000"}', "NUL"),
]


@pytest.mark.parametrize(("name", "value", "why"), WRONG_TYPES, ids=lambda v: repr(v)[:20])
def test_a_value_of_the_wrong_type_is_a_400_naming_the_parameter(
    api: APIClient, name: str, value: Any, why: str
) -> None:
    version = typed_version()
    body = {
        "display_name": "typed",
        "pipeline_version_reference": {"pipeline_id": str(version.pipeline_id)},
        "runtime_config": {"parameters": {name: value}},
    }
    before = row_counts()
    message = refused(api.post(f"{API}/runs", body, format="json"), f"{name}:", why)
    assert message.startswith("invalid parameters")
    assert row_counts() == before


def test_values_in_the_shapes_kfp_clients_send_are_accepted(api: APIClient) -> None:
    """kfp.Client sends JSON values; the kfp CLI sends every value as a string."""
    version = typed_version()
    reference = {"pipeline_id": str(version.pipeline_id)}
    from_client = {
        "text": "hi",
        "count": 7,
        "rate": 2,
        "verbose": True,
        "tags": [1, "x"],
        "config": {"a": [1]},
    }
    from_cli = {
        "text": "5",
        "count": "7",
        "rate": "2.5",
        "verbose": "false",
        "tags": "[1]",
        "config": '{"a": 1}',
    }
    for parameters in (from_client, from_cli):
        body = {
            "display_name": "ok",
            "pipeline_version_reference": reference,
            "runtime_config": {"parameters": parameters},
        }
        response = api.post(f"{API}/runs", body, format="json")
        assert response.status_code == 200, response.content
    first, second = Run.objects.order_by("created_at")
    assert first.runtime_parameters == {**from_client, "rate": 2.0}
    assert second.runtime_parameters == {
        "text": "5",
        "count": 7,
        "rate": 2.5,
        "verbose": False,
        "tags": [1],
        "config": {"a": 1},
    }


def test_a_non_finite_number_anywhere_in_a_body_is_refused(api: APIClient) -> None:
    body = b'{"display_name": "x", "pipeline_spec": {"a": [1e400]}}'
    refused(post_raw(api, "runs", body), "pipeline_spec.a[0]", "finite")


def test_recurring_runs_check_parameters_the_same_way(api: APIClient) -> None:
    body = {
        **_recurring({"periodic_schedule": {"interval_second": 60}}),
        "runtime_config": {"parameters": {"text": 5}},
    }
    refused(api.post(f"{API}/recurringruns", body, format="json"), "text:", "expects a string")
    assert not RecurringRun.objects.exists()


# --- Uploaded YAML ------------------------------------------------------------------------


def _upload(api: APIClient, text: str) -> Any:
    from io import BytesIO

    handle = BytesIO(text.encode())
    handle.name = "p.yaml"
    return api.post(f"{API}/pipelines/upload", {"uploadfile": handle}, format="multipart")


@pytest.mark.parametrize(
    ("escape", "why"),
    [("\\ud800", "Unicode"), ("\\0", "NUL"), ("\\x00", "NUL")],
    ids=["surrogate", "nul", "x00"],
)
def test_yaml_escapes_that_make_bad_text_are_refused_with_their_line(
    api: APIClient, escape: str, why: str
) -> None:
    from tests.factories import HELLO_IR_TEXT

    text = HELLO_IR_TEXT.replace("pipelineInfo:\n  name: hello", f'pipelineInfo:\n  name: "hel{escape}lo"')
    assert text != HELLO_IR_TEXT
    before = row_counts()
    response = _upload(api, text)
    assert response.status_code == 400, response.content
    error = response.json()["error_message"]
    assert why in error and "line 14" in error
    assert row_counts() == before


def test_the_pure_python_yaml_parser_refuses_surrogate_escapes_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # libyaml refuses \ud800 itself; PyYAML's own parser (used without libyaml) does not.
    from apps.importers import PipelineImportError, yaml_safe

    monkeypatch.setattr(yaml_safe, "_CParser", None)
    with pytest.raises(PipelineImportError) as err:
        yaml_safe.load_documents('a:\n  b: "x\\ud800"\n')
    assert "lone surrogate" in str(err.value) and err.value.line == 2 and err.value.field_path == "a.b"


def test_inline_specs_from_python_callers_are_checked() -> None:
    from apps.importers import PipelineImportError, import_spec_dict

    with pytest.raises(PipelineImportError) as err:
        import_spec_dict({**TYPED_SPEC, "pipelineInfo": {"name": f"x{SURROGATE}"}})
    assert err.value.field_path == "pipelineInfo.name" and "surrogate" in str(err.value)


# --- Edges that already answered 400 stay that way -------------------------------------


def test_nul_in_a_query_parameter_is_refused(api: APIClient) -> None:
    refused(api.get(f"{API}/runs", {"namespace": "a\x00b"}), "namespace", "NUL")


def test_oversized_json_bodies_are_refused_before_parsing(api: APIClient, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = raw_json({"display_name": "x" * 2000})
    refused(post_raw(api, "experiments", body), "larger than 1024 bytes")
    ExperimentFactory()  # the database is untouched and usable
    RecurringRunFactory()
