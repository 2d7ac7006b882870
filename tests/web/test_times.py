"""Every page shows an instant one way, "2026-03-29 09:00:07 UTC": with its zone,
never as ISO 8601 with a "T" (apps.core.timefmt, the ``when`` filter)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from apps.core.choices import RuntimeState
from apps.core.timefmt import format_instant
from tests.factories import (
    ArtifactFactory,
    ExperimentFactory,
    PipelineVersionFactory,
    RecurringRunFactory,
    RunFactory,
    TaskFactory,
)

# A moment whose every field differs, so a wrong format cannot match by accident.
MOMENT = datetime(2025, 11, 28, 17, 43, 29, tzinfo=UTC)
ISO_T = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
# A date followed by a time: it must carry seconds and a zone abbreviation.
SHOWN_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?P<zone> ?[A-Z][A-Za-z+\-0-9]{1,5})?"
)


def visible_text(html: str) -> str:
    """What a reader sees: no scripts, no tags (so no attribute values)."""
    html = re.sub(r"(?is)<script.*?</script>", " ", html)
    html = re.sub(r"(?is)<[^>]+>", " ", html)
    return re.sub(r"\s+", " ", html)


def assert_times_have_zones(html: str) -> list[str]:
    text = visible_text(html)
    assert not ISO_T.search(text), f"ISO time with a T shown: {ISO_T.search(text)}"
    shown = [m.group(0) for m in SHOWN_TIME.finditer(text)]
    for value in shown:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [A-Z]{2,5}", value), (
            f"time without zone: {value!r}"
        )
    return shown


def test_format_instant() -> None:
    assert format_instant(MOMENT) == "2025-11-28 17:43:29 UTC"
    assert format_instant(MOMENT, "Europe/Paris") == "2025-11-28 18:43:29 CET"
    assert format_instant(MOMENT.replace(tzinfo=None)) == "2025-11-28 17:43:29 UTC"
    assert format_instant(MOMENT, "Not/AZone") == "2025-11-28 17:43:29 UTC"
    assert format_instant(None) == "—"


@pytest.mark.django_db
def test_main_pages_show_every_time_with_its_zone(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory(created_at=MOMENT)
    pipeline = version.pipeline
    pipeline.created_at = MOMENT
    pipeline.save()
    experiment = ExperimentFactory(created_at=MOMENT)
    run = RunFactory(
        experiment=experiment,
        pipeline_version=version,
        state=RuntimeState.SUCCEEDED,
        created_at=MOMENT,
        started_at=MOMENT,
        finished_at=MOMENT + timedelta(seconds=5),
    )
    other = RunFactory(experiment=experiment, pipeline_version=version, created_at=MOMENT)
    task = TaskFactory(run=run, started_at=MOMENT, finished_at=MOMENT + timedelta(seconds=3))
    artifact = ArtifactFactory(producer_task=task, created_at=MOMENT)
    schedule = RecurringRunFactory(experiment=experiment, pipeline_version=version, timezone="Europe/Paris")
    schedule.created_at = MOMENT
    schedule.save()
    # created_at is auto_now_add on some models: write the moment back in.
    for obj in (version, pipeline, experiment, run, other, artifact):
        type(obj).objects.filter(pk=obj.pk).update(created_at=MOMENT)

    pages = {
        "/pipelines/": "2025-11-28 17:43:29 UTC",
        f"/pipelines/{pipeline.pk}/": "2025-11-28 17:43:29 UTC",
        "/experiments/": "2025-11-28 17:43:29 UTC",
        f"/experiments/{experiment.pk}/": "2025-11-28 17:43:29 UTC",
        "/runs/": "2025-11-28 17:43:29 UTC",
        f"/runs/{run.pk}/": "2025-11-28 17:43:29 UTC",
        f"/runs/{run.pk}/tasks/": "2025-11-28 17:43:29 UTC",
        f"/runs/{run.pk}/panel/?task={task.pk}": "2025-11-28 17:43:29 UTC",
        f"/runs/compare/?run={run.pk}&run={other.pk}": "2025-11-28 17:43:29 UTC",
        "/artifacts/": "2025-11-28 17:43:29 UTC",
        f"/artifacts/{artifact.pk}/": "2025-11-28 17:43:29 UTC",
        "/recurring-runs/": None,
        f"/recurring-runs/{schedule.pk}/": "2025-11-28 18:43:29 CET",
        f"/runs/new/?pipeline={pipeline.pk}&version={version.pk}": "2025-11-28 17:43:29 UTC",
        "/executions/": "2025-11-28 17:43:29 UTC",
        f"/executions/{task.pk}/": "2025-11-28 17:43:29 UTC",
    }
    for url, expected in pages.items():
        response = logged_in.get(url, headers={"X-Canal-Fragment": "1"} if "/panel/" in url else {})
        assert response.status_code == 200, url
        shown = assert_times_have_zones(response.content.decode())
        if expected is not None:
            assert expected in shown, f"{url}: {expected} not among {shown}"
    status = logged_in.get(f"/runs/{run.pk}/status/").json()
    assert status["started"] == "2025-11-28 17:43:29 UTC"


@pytest.mark.django_db
def test_admin_shows_times_in_the_same_format(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    run = RunFactory(state=RuntimeState.SUCCEEDED, started_at=MOMENT, finished_at=MOMENT)
    type(run).objects.filter(pk=run.pk).update(created_at=MOMENT)
    client.force_login(staff_user)
    for url in ("/admin/runs/run/", f"/admin/runs/run/{run.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 200, url
        shown = assert_times_have_zones(response.content.decode())
        assert "2025-11-28 17:43:29 UTC" in shown, (url, shown)
