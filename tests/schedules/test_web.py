"""Recurring-run pages, the TriggerForm, the preview endpoint and the admin actions."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client

from apps.core.authz import OPERATOR
from apps.core.choices import RecurringRunMode, RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.models import Run
from apps.schedules.forms import TriggerForm
from apps.schedules.models import RecurringRun
from apps.schedules.services import TRIGGER_FIELDS, recurring_run_create
from tests.factories import ExperimentFactory, NamespaceFactory, PipelineVersionFactory, RecurringRunFactory
from tests.schedules.helpers import tick_at, utc

pytestmark = pytest.mark.django_db


def make(**kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("namespace", namespace_ensure(actor=OPERATOR))
    kwargs.setdefault("actor", OPERATOR)
    kwargs.setdefault("display_name", "nightly")
    kwargs.setdefault("pipeline_version", PipelineVersionFactory())
    kwargs.setdefault("trigger_type", "CRON")
    kwargs.setdefault("cron", "0 9 * * *")
    kwargs.setdefault("timezone", "Europe/Paris")
    return recurring_run_create(**kwargs)


# --- TriggerForm ----------------------------------------------------------------------


def test_trigger_form_cleans_to_exactly_the_create_kwargs() -> None:
    form = TriggerForm(
        {
            "t-trigger_type": "PERIODIC",
            "t-interval_value": "2",
            "t-interval_unit": "3600",
            "t-start_time": "2026-03-28T09:00",
            "t-end_time": "",
            "t-timezone": "Europe/Paris",
            "t-max_concurrency": "3",
            "t-no_catchup": "on",
            "t-enabled": "on",
        },
        prefix="t",
    )
    assert form.is_valid(), form.errors
    assert set(form.cleaned_data) == set(TRIGGER_FIELDS)
    assert form.cleaned_data == {
        "trigger_type": "PERIODIC",
        "cron": "",
        "interval_second": 7200,
        "start_time": datetime(2026, 3, 28, 9, tzinfo=ZoneInfo("Europe/Paris")),
        "end_time": None,
        "timezone": "Europe/Paris",
        "max_concurrency": 3,
        "no_catchup": True,
        "enabled": True,
    }
    assert form.cleaned_data["start_time"].utcoffset().total_seconds() == 3600  # 09:00 CET, as typed
    rr = recurring_run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="from form",
        pipeline_version=PipelineVersionFactory(),
        **form.cleaned_data,
    )
    assert rr.interval_second == 7200 and rr.start_time == utc(2026, 3, 28, 8)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"trigger_type": "CRON", "cron": ""}, "cron"),
        ({"trigger_type": "CRON", "cron": "0 9 * *"}, "cron"),
        ({"trigger_type": "PERIODIC", "interval_value": ""}, "interval_value"),
        ({"trigger_type": "PERIODIC", "interval_value": "0"}, "interval_value"),
        ({"trigger_type": "CRON", "cron": "0 9 * * *", "timezone": "Moon/Base"}, "timezone"),
        (
            {
                "trigger_type": "CRON",
                "cron": "0 9 * * *",
                "start_time": "2026-02-01T00:00",
                "end_time": "2026-01-01T00:00",
            },
            "end_time",
        ),
        ({"trigger_type": "CRON", "cron": "0 9 * * *", "max_concurrency": "0"}, "max_concurrency"),
    ],
)
def test_trigger_form_errors_land_on_the_right_field(data, field) -> None:  # type: ignore[no-untyped-def]
    base = {"timezone": "UTC", "max_concurrency": "1", "interval_unit": "60"}
    form = TriggerForm({**base, **data})
    assert not form.is_valid()
    assert field in form.errors, form.errors


def test_trigger_form_round_trips_an_existing_schedule() -> None:
    rr = make(start_time=utc(2026, 6, 1, 7), max_concurrency=4, no_catchup=True)
    initial = TriggerForm.initial_from(rr)
    assert initial["start_time"] == datetime(2026, 6, 1, 9)  # wall clock in Paris
    assert initial["cron"] == "0 9 * * *" and initial["max_concurrency"] == 4 and initial["no_catchup"]
    texts = [t["text"] for t in TriggerForm(initial=initial).preview()]
    assert len(texts) == 5 and all(t.endswith(("09:00:00 CET", "09:00:00 CEST")) for t in texts)


def test_trigger_fields_partial_renders_the_preview(logged_in: Client) -> None:
    rr = make()
    page = logged_in.get(f"/recurring-runs/{rr.pk}/clone/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "data-trigger-fields" in html and 'name="trigger-cron"' in html
    assert html.count("09:00:00 CE") == 5  # five preview items, in Paris time
    assert "schedules/trigger.js" in html


# --- preview endpoint ----------------------------------------------------------------------


def test_preview_endpoint(logged_in: Client) -> None:
    with time_machine.travel(utc(2026, 3, 27, 12), tick=False):
        data = logged_in.get(
            "/recurring-runs/preview/",
            {"trigger_type": "CRON", "cron": "0 9 * * *", "timezone": "Europe/Paris"},
        ).json()
    assert [t["text"] for t in data["times"]] == [
        "Sat 2026-03-28 09:00:00 CET",
        "Sun 2026-03-29 09:00:00 CEST",
        "Mon 2026-03-30 09:00:00 CEST",
        "Tue 2026-03-31 09:00:00 CEST",
        "Wed 2026-04-01 09:00:00 CEST",
    ]
    assert data["times"][1]["iso"] == "2026-03-29T09:00:00+02:00"
    bad = logged_in.get("/recurring-runs/preview/", {"trigger_type": "CRON", "cron": "nope"}).json()
    assert bad["times"] == [] and "cron" in bad["errors"] and bad["error"]


def test_preview_needs_a_login(client: Client) -> None:
    assert client.get("/recurring-runs/preview/").status_code == 302


# --- list and detail --------------------------------------------------------------------------


def test_list_shows_schedules_with_their_timezone_and_filters_by_experiment(logged_in: Client) -> None:
    exp = ExperimentFactory(display_name="exp-a")
    make(display_name="in-a", experiment=exp)
    make(display_name="elsewhere", trigger_type="PERIODIC", interval_second=7200, timezone="UTC")
    page = logged_in.get("/recurring-runs/").content.decode()
    assert "in-a" in page and "elsewhere" in page and "every 2 hours" in page
    assert "(Europe/Paris)" in page and re.search(r"\d\d:\d\d:\d\d CES?T", page)
    filtered = logged_in.get(f"/recurring-runs/?experiment={exp.pk}").content.decode()
    assert "in-a" in filtered and "elsewhere" not in filtered


def test_detail_shows_times_in_the_timezone_and_the_run_history(logged_in: Client) -> None:
    with time_machine.travel(utc(2026, 5, 1, 6), tick=False):
        rr = make(max_concurrency=5)
    tick_at(utc(2026, 5, 3, 7, 0, 1))
    Run.objects.filter(recurring_run=rr).update(state=RuntimeState.SUCCEEDED)
    html = logged_in.get(f"/recurring-runs/{rr.pk}/").content.decode()
    assert "nightly 2026-05-01 09:00:00 CEST" in html and "nightly 2026-05-03 09:00:00 CEST" in html
    assert "Last fired" in html and "2026-05-03 09:00:00 CEST" in html
    assert "Next fire" in html and "2026-05-04 09:00:00 CEST" in html
    assert html.count("state-SUCCEEDED") == 3
    paged = logged_in.get(f"/recurring-runs/{rr.pk}/?page_size=10&page=2")
    assert paged.status_code == 200


def test_other_namespaces_are_not_found(logged_in: Client) -> None:
    hidden = RecurringRunFactory(namespace=NamespaceFactory(name="secret"))
    for url in (
        f"/recurring-runs/{hidden.pk}/",
        f"/recurring-runs/{hidden.pk}/clone/",
        "/recurring-runs/not-a-uuid/",
    ):
        assert logged_in.get(url).status_code == 404, url
    for action in ("enable", "disable", "delete", "clone"):
        assert logged_in.post(f"/recurring-runs/{hidden.pk}/{action}/").status_code == 404
    assert RecurringRun.objects.filter(pk=hidden.pk).exists()
    assert "secret" not in logged_in.get("/recurring-runs/").content.decode()


# --- actions -----------------------------------------------------------------------------------


def test_actions_are_csrf_protected_posts(csrf_client: Client) -> None:
    rr = make()
    assert csrf_client.post(f"/recurring-runs/{rr.pk}/disable/").status_code == 403
    assert csrf_client.get(f"/recurring-runs/{rr.pk}/disable/").status_code == 405
    rr.refresh_from_db()
    assert rr.mode == RecurringRunMode.ENABLE


def _csrf(client: Client, url: str) -> str:
    html = client.get(url).content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_disable_enable_clone_delete_through_the_pages(csrf_client: Client) -> None:
    rr = make()
    detail = f"/recurring-runs/{rr.pk}/"
    token = _csrf(csrf_client, detail)
    assert csrf_client.post(f"{detail}disable/", {"csrfmiddlewaretoken": token}).status_code == 302
    rr.refresh_from_db()
    assert rr.mode == RecurringRunMode.DISABLE
    assert "backfill the disabled period" in csrf_client.get(detail).content.decode()
    csrf_client.post(f"{detail}enable/", {"csrfmiddlewaretoken": token})
    rr.refresh_from_db()
    assert rr.mode == RecurringRunMode.ENABLE and rr.next_fire_time is not None

    response = csrf_client.post(
        f"{detail}clone/",
        {
            "csrfmiddlewaretoken": token,
            "display_name": "hourly copy",
            "trigger-trigger_type": "PERIODIC",
            "trigger-interval_value": "1",
            "trigger-interval_unit": "3600",
            "trigger-timezone": "UTC",
            "trigger-max_concurrency": "2",
        },
    )
    assert response.status_code == 302
    copy = RecurringRun.objects.get(display_name="hourly copy")
    assert response["Location"] == f"/recurring-runs/{copy.pk}/"
    assert copy.interval_second == 3600 and copy.mode == RecurringRunMode.DISABLE  # "enabled" unticked
    assert copy.pipeline_version_id == rr.pipeline_version_id

    bad = csrf_client.post(
        f"{detail}clone/",
        {
            "csrfmiddlewaretoken": token,
            "display_name": "x",
            "trigger-trigger_type": "CRON",
            "trigger-cron": "bad",
            "trigger-timezone": "UTC",
            "trigger-max_concurrency": "1",
        },
    )
    assert bad.status_code == 400 and "has 5 fields" in bad.content.decode()

    assert csrf_client.post(f"{detail}delete/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert not RecurringRun.objects.filter(pk=rr.pk).exists()


def test_admin_enable_and_disable_actions(client: Client, staff_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff_user)
    a, b = make(display_name="a"), make(display_name="b")
    url = "/admin/schedules/recurringrun/"
    client.post(url, {"action": "disable_selected", "_selected_action": [a.pk, b.pk]})
    assert set(RecurringRun.objects.values_list("mode", flat=True)) == {RecurringRunMode.DISABLE}
    assert RecurringRun.objects.filter(next_fire_time__isnull=False).count() == 0
    client.post(url, {"action": "enable_selected", "_selected_action": [a.pk]})
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.mode == RecurringRunMode.ENABLE and a.next_fire_time is not None
    assert b.mode == RecurringRunMode.DISABLE
    assert client.get(f"{url}add/").status_code == 403
