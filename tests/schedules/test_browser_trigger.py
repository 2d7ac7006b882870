"""The trigger fields in Chromium: the cron/interval inputs follow the trigger type,
and the "next 5 fire times" preview follows what is typed (schedules:preview).
No timed assertions: Playwright's expect() waits for each state."""

from __future__ import annotations

import re
from typing import Any

import pytest

from apps.core.authz import OPERATOR
from apps.core.services import namespace_ensure
from apps.schedules.services import recurring_run_create
from tests.browser.conftest import browser_page  # noqa: F401 (fixture)
from tests.factories import PipelineVersionFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.slow]


def test_trigger_fields_preview_follows_the_inputs(live_server: Any, browser_page: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    page, base = browser_page, live_server.url
    UserFactory(username="scheduler-ui")
    rr = recurring_run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="hourly",
        pipeline_version=PipelineVersionFactory(),
        trigger_type="PERIODIC",
        interval_second=3600,
    )
    page.goto(f"{base}/login/")
    page.fill("#id_username", "scheduler-ui")
    page.fill("#id_password", "pw-canal-test")
    page.click("main form button[type=submit]")
    page.goto(f"{base}/recurring-runs/{rr.pk}/clone/")

    preview = page.locator("[data-trigger-preview] li")
    expect(preview).to_have_count(5)
    cron = page.locator("#id_trigger-cron")
    expect(cron).to_be_hidden()

    page.check("input[name=trigger-trigger_type][value=CRON]")
    expect(cron).to_be_visible()
    expect(page.locator("#id_trigger-interval_value")).to_be_hidden()
    cron.fill("0 9 * * 1-5")
    page.fill("#id_trigger-timezone", "Europe/Paris")
    expect(preview.first).to_have_text(re.compile(r"^(Mon|Tue|Wed|Thu|Fri) \d{4}-\d\d-\d\d 09:00:00 CES?T$"))
    expect(preview).to_have_count(5)

    cron.fill("0 9 * *")
    error = page.locator("[data-trigger-preview-error]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("5 fields")
    expect(preview).to_have_text(["none"])

    cron.fill("0 0 9 ? * 2-6")  # KFP's 6-field form
    expect(error).to_be_hidden()
    expect(preview.first).to_have_text(re.compile(r"^(Tue|Wed|Thu|Fri|Sat) .* 09:00:00 CES?T$"))
    assert page.canal_errors == []
