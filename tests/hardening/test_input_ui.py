"""Issue 9, "no 500s from input", through the web UI: the new-run form (one-off and
recurring), the clone form and the trigger preview refuse hostile values on the
field, with a 400 page, and write nothing."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client

from apps.runs.models import Run
from apps.schedules.models import RecurringRun
from tests.factories import RecurringRunFactory, UserFactory

from .hostile import DEEP, row_counts, typed_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser() -> Client:
    """A logged-in client that enforces CSRF, as a browser session would."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="alice"))
    return client


def csrf_post(client: Client, url: str, data: dict[str, Any]) -> Any:
    page = client.get(url)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token, "the page has a form with a CSRF token"
    return client.post(url, {**data, "csrfmiddlewaretoken": token.group(1)})


def field_errors(response: Any) -> dict[str, str]:
    """Each field's error text, read from the page as a person sees it: every field is
    a ``<div class="field ...">`` holding its input and its errors."""
    errors: dict[str, str] = {}
    for block in re.split(r'<div class="field[ "]', response.content.decode())[1:]:
        name = re.search(r'<(?:input|select|textarea)[^>]*\bname="([\w-]+)"', block)
        messages = re.findall(r'class="field-error"[^>]*>(.*?)</', block, re.S)
        if name and messages:
            errors[name.group(1)] = " ".join(html.unescape(m).strip() for m in messages)
    return errors


ONE_OFF = {"display_name": "run", "run_type": "one-off"}


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("param__tags", "[" * DEEP + "]" * DEEP, "nested deeper than 100 levels"),
        (
            "param__config",
            '{"k": {"deep": ' + "[" * 5000 + "]" * 5000 + "}}",
            "nested deeper than 100 levels",
        ),
        ("param__tags", '["ok", "\\ud800"]', "lone surrogate"),
        ("param__config", '{"\\udc00": 1}', "lone surrogate"),
        ("param__config", '{"k": "a\\u0000b"}', "NUL"),
        ("param__tags", "[1e400]", "finite"),
        ("param__count", str(2**70), "64 bits"),
        ("param__count", "9" * 5000, "whole number"),
        ("param__rate", "1e400", "number"),
    ],
    ids=lambda v: v[:24] if isinstance(v, str) else v,
)
def test_hostile_parameter_values_are_refused_on_their_field(
    browser: Client, field: str, value: str, why: str
) -> None:
    version = typed_version()
    before = row_counts()
    response = csrf_post(browser, f"/runs/new/?version={version.pk}", {**ONE_OFF, field: value})
    assert response.status_code == 400
    errors = field_errors(response)
    assert why in errors.get(field, ""), errors
    assert row_counts() == before


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("trigger-start_time", "9999-12-31T23:59:59", "out of range"),
        ("trigger-end_time", "0001-01-01T00:00:00", "out of range"),
        ("trigger-end_time", "2001-01-01T00:00:00", "has passed"),
    ],
)
@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Etc/GMT+12"])
def test_recurring_times_out_of_bounds_are_refused_on_their_field(
    browser: Client, field: str, value: str, why: str, zone: str
) -> None:
    version = typed_version()
    data = {
        "display_name": "scheduled",
        "run_type": "recurring",
        "trigger-trigger_type": "PERIODIC",
        "trigger-interval_value": "1",
        "trigger-interval_unit": "3600",
        "trigger-timezone": zone,
        "trigger-max_concurrency": "1",
        "trigger-enabled": "on",
        field: value,
    }
    before = row_counts()
    response = csrf_post(browser, f"/runs/new/?version={version.pk}", data)
    assert response.status_code == 400
    errors = field_errors(response)
    assert why in errors.get(field, ""), errors
    assert row_counts() == before
    assert not RecurringRun.objects.exists() and not Run.objects.exists()


def test_the_clone_form_refuses_an_end_in_year_one(browser: Client) -> None:
    source = RecurringRunFactory()
    before = row_counts()
    response = csrf_post(
        browser,
        f"/recurring-runs/{source.pk}/clone/",
        {
            "display_name": "copy",
            "trigger-trigger_type": "PERIODIC",
            "trigger-interval_value": "1",
            "trigger-interval_unit": "3600",
            "trigger-timezone": "UTC",
            "trigger-max_concurrency": "1",
            "trigger-end_time": "0001-01-01T00:00:00",
        },
    )
    assert response.status_code == 400
    assert "out of range" in field_errors(response).get("trigger-end_time", "")
    assert row_counts() == before


@pytest.mark.parametrize(
    "params",
    [
        {
            "trigger_type": "PERIODIC",
            "interval_value": "1",
            "interval_unit": "60",
            "start_time": "9999-12-31T23:59:59",
        },
        {
            "trigger_type": "CRON",
            "cron": "0 * * * *",
            "end_time": "0001-01-01T00:00:00",
            "timezone": "Asia/Tokyo",
        },
    ],
)
def test_the_trigger_preview_answers_out_of_range_times_with_an_error(
    browser: Client, params: dict[str, str]
) -> None:
    response = browser.get("/recurring-runs/preview/", params)
    assert response.status_code == 200
    data = response.json()
    assert data["times"] == [] and "out of range" in data["error"]


@pytest.mark.parametrize(
    "url", ["/runs/", "/experiments/", "/pipelines/", "/recurring-runs/", "/artifacts/", "/runs/{run}/"]
)
def test_a_100000_character_search_is_cut_with_a_message_not_a_500(browser: Client, url: str) -> None:
    # SQLite refuses LIKE patterns over 50,000 bytes: the list pages answered 500.
    from tests.factories import RunFactory

    run = RunFactory(display_name="findable")
    name = "tq" if "{run}" in url else "q"
    response = browser.get(url.format(run=run.pk), {name: "x" * 100_000})
    assert response.status_code == 200
    assert "Search text is limited to 255 characters" in response.content.decode()
    found = browser.get("/runs/", {"q": "findable" + " " * 300})
    assert found.status_code == 200 and "findable" in found.content.decode()


def test_an_empty_post_to_the_run_form_is_a_400_not_a_500(browser: Client) -> None:
    # Found by the form fuzz's empty POST to every route: an unbound form was given an error.
    page = browser.get("/runs/new/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token
    before = row_counts()
    response = browser.post(
        "/runs/new/", {}, HTTP_X_CSRFTOKEN=token.group(1)
    )  # the token in a header, no body
    assert response.status_code == 400
    page = response.content.decode()
    assert "Choose a pipeline and version first." in page and 'id="pipeline-picker"' in page
    assert row_counts() == before


@pytest.mark.parametrize("name", ["mlpipeline-metrics", "mlpipeline-ui-metadata"])
def test_a_step_output_with_a_5000_digit_number_does_not_break_the_pages(browser: Client, name: str) -> None:
    # Found while fuzzing: json.loads raises a plain ValueError (not JSONDecodeError)
    # for integers longer than Python converts, and the run list reads v1 metrics files.
    from pathlib import Path

    from django.conf import settings

    from tests.factories import ArtifactFactory

    path = Path(settings.CANAL_PIPELINE_ROOT) / "hardening" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"metrics": [{"name": "n", "numberValue": ' + "9" * 5000 + "}], " + '"outputs": []}')
    artifact = ArtifactFactory(name=name, uri=str(path))
    assert browser.get(f"/artifacts/{artifact.pk}/").status_code == 200
    assert browser.get("/runs/").status_code == 200
    assert browser.get(f"/runs/{artifact.run_id}/").status_code == 200
