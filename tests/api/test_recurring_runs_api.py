"""RecurringRunService at the HTTP level: the wire format KFP's client reads
(``recurringRuns``, int64 strings, enum names), wired to apps.schedules."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from apps.core.choices import RecurringRunStatus
from apps.schedules.models import RecurringRun
from tests.api.conftest import API
from tests.factories import HELLO_IR_TEXT, ExperimentFactory, PipelineVersionFactory, RecurringRunFactory

pytestmark = pytest.mark.django_db

HELLO_SPEC = yaml.safe_load(HELLO_IR_TEXT)


def test_create_periodic_from_a_version_and_read_it_back(api: APIClient) -> None:
    experiment = ExperimentFactory()
    version = PipelineVersionFactory()
    body = {
        "display_name": "hourly",
        "description": "every hour",
        "experiment_id": str(experiment.pk),
        "pipeline_version_reference": {
            "pipeline_id": str(version.pipeline_id),
            "pipeline_version_id": str(version.pk),
        },
        "trigger": {"periodic_schedule": {"interval_second": "3600", "start_time": "2030-01-01T00:00:00Z"}},
        "max_concurrency": "3",
        "mode": "ENABLE",
        "no_catchup": True,
    }
    response = api.post(f"{API}/recurringruns", body, format="json")
    assert response.status_code == 200, response.content
    created = response.json()
    assert created["status"] == "ENABLED" and created["mode"] == "ENABLE"
    assert created["max_concurrency"] == "3" and created["no_catchup"] is True
    periodic = created["trigger"]["periodic_schedule"]
    assert periodic == {"interval_second": "3600", "start_time": "2030-01-01T00:00:00Z"}
    assert created["pipeline_version_reference"] == body["pipeline_version_reference"]
    assert created["experiment_id"] == str(experiment.pk) and created["namespace"] == "default"
    got = api.get(f"{API}/recurringruns/{created['recurring_run_id']}").json()
    assert got == created
    listed = api.get(f"{API}/recurringruns", {"experiment_id": str(experiment.pk)}).json()
    assert set(listed) == {"recurringRuns", "total_size", "next_page_token"}
    assert [r["recurring_run_id"] for r in listed["recurringRuns"]] == [created["recurring_run_id"]]


def test_create_cron_from_an_inline_spec_disabled(api: APIClient) -> None:
    body = {
        "display_name": "weekdays",
        "pipeline_spec": HELLO_SPEC,
        "trigger": {"cron_schedule": {"cron": "0 0 9 ? * 2-6"}},
        "mode": 2,
    }
    response = api.post(f"{API}/recurringruns", body, format="json")
    assert response.status_code == 200, response.content
    created = response.json()
    assert created["trigger"] == {"cron_schedule": {"cron": "0 0 9 ? * 2-6"}}
    assert created["status"] == "DISABLED" and created["pipeline_spec"] == HELLO_SPEC
    assert created["max_concurrency"] == "1"
    # Lists leave an inline spec out.
    [listed] = api.get(f"{API}/recurringruns").json()["recurringRuns"]
    assert "pipeline_spec" not in listed


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trigger": {}}, "exactly one of cron_schedule or periodic_schedule"),
        (
            {
                "trigger": {
                    "cron_schedule": {"cron": "* * * * *"},
                    "periodic_schedule": {"interval_second": 5},
                }
            },
            "exactly",
        ),
        ({"trigger": {"cron_schedule": {"cron": ""}}}, "cron is required"),
        ({"trigger": {"cron_schedule": {"cron": "not a cron"}}}, ""),
        ({"trigger": {"periodic_schedule": {"interval_second": "-5"}}}, "positive"),
        ({"trigger": {"periodic_schedule": {"interval_second": "soon"}}}, "int64"),
        ({"trigger": {"periodic_schedule": {"interval_second": 60, "start_time": "tomorrow"}}}, "RFC3339"),
        ({"mode": "SOMETIMES"}, "mode must be one of"),
        ({"max_concurrency": "many"}, "int64"),
        ({"no_catchup": "yes"}, "true or false"),
        ({"pipeline_spec": None}, "exactly one of"),
    ],
)
def test_create_errors(api: APIClient, changes: dict[str, Any], message: str) -> None:
    body = {
        "display_name": "bad",
        "pipeline_spec": HELLO_SPEC,
        "trigger": {"periodic_schedule": {"interval_second": 60}},
        **changes,
    }
    response = api.post(
        f"{API}/recurringruns", {k: v for k, v in body.items() if v is not None}, format="json"
    )
    assert response.status_code == 400, response.content
    assert message in response.json()["message"]
    assert not RecurringRun.objects.exists()


def test_enable_disable_delete(api: APIClient) -> None:
    recurring = RecurringRunFactory()
    url = f"{API}/recurringruns/{recurring.pk}"
    assert api.post(f"{url}:disable").json() == {}
    assert api.get(url).json()["status"] == RecurringRunStatus.DISABLED
    assert api.post(f"{url}:enable").json() == {}
    assert api.get(url).json()["status"] == RecurringRunStatus.ENABLED
    assert api.delete(url).json() == {}
    assert api.get(url).status_code == 404
    assert api.get(f"{API}/recurringruns/not-an-id").status_code == 404
