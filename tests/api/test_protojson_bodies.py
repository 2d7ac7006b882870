"""Request bodies are read as KFP's gateway (protojson) reads them, by the serializers:
proto or lowerCamelCase names, unknown fields ignored, null as unset, int64 as a number
or a decimal string, enums by name or number, and a wrong type refused with a 400 that
names the field's path."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from tests.api.conftest import API
from tests.factories import HELLO_IR_TEXT

pytestmark = pytest.mark.django_db
HELLO_SPEC = yaml.safe_load(HELLO_IR_TEXT)


def _recurring(api: APIClient, **fields: Any) -> Any:
    body = {"display_name": "r", "pipeline_spec": HELLO_SPEC, "trigger": {"periodic_schedule": {}}, **fields}
    return api.post(f"{API}/recurringruns", body, format="json")


def test_names_nulls_unknown_fields_int64_and_enums(api: APIClient) -> None:
    response = _recurring(
        api,
        display_name=None,
        displayName="camel",
        description=None,
        no_such_field={"ignored": True},
        maxConcurrency="3",
        mode=2,
        trigger={"periodicSchedule": {"intervalSecond": 60, "startTime": None}},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["display_name"] == "camel" and "description" not in body
    assert body["max_concurrency"] == "3" and body["mode"] == "DISABLE"
    assert body["trigger"] == {"periodic_schedule": {"interval_second": "60"}}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"display_name": 5}, "display_name must be a string"),
        ({"max_concurrency": "many"}, "max_concurrency must be an int64"),
        ({"no_catchup": "true"}, "no_catchup must be true or false"),
        ({"mode": 7}, "mode must be one of DISABLE, ENABLE, MODE_UNSPECIFIED"),
        ({"runtime_config": {"parameters": []}}, "runtime_config.parameters must be a JSON object"),
        ({"pipeline_version_reference": "p"}, "pipeline_version_reference must be a JSON object"),
        (
            {"trigger": {"periodic_schedule": {"interval_second": 60, "end_time": "soon"}}},
            "trigger.periodic_schedule.end_time must be an RFC3339 time",
        ),
    ],
)
def test_a_wrong_type_is_a_400_naming_its_path(api: APIClient, fields: dict[str, Any], message: str) -> None:
    response = _recurring(api, **fields)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == 3 and response.json()["message"].startswith(message)


def test_a_body_that_is_not_an_object_is_refused(api: APIClient) -> None:
    response = api.post(f"{API}/experiments", [1], format="json")
    assert response.status_code == 400
    assert response.json()["message"] == "the request body must be a JSON object"
