"""The admin lists runs, filterable by state and experiment, read-only."""

from __future__ import annotations

import pytest

from apps.core.choices import RuntimeState
from tests.factories import ExperimentFactory, RunFactory


@pytest.mark.django_db
def test_admin_run_list_filters_by_state_and_experiment(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff_user)
    exp_a, exp_b = ExperimentFactory(display_name="exp-a"), ExperimentFactory(display_name="exp-b")
    RunFactory(display_name="run-ok", experiment=exp_a, state=RuntimeState.SUCCEEDED)
    RunFactory(display_name="run-bad", experiment=exp_a, state=RuntimeState.FAILED)
    RunFactory(display_name="run-other", experiment=exp_b, state=RuntimeState.FAILED)

    all_runs = client.get("/admin/runs/run/").content.decode()
    assert all(name in all_runs for name in ("run-ok", "run-bad", "run-other"))

    failed = client.get("/admin/runs/run/?state__exact=FAILED").content.decode()
    assert "run-bad" in failed and "run-other" in failed and "run-ok" not in failed

    in_a = client.get(f"/admin/runs/run/?experiment__id__exact={exp_a.pk}").content.decode()
    assert "run-ok" in in_a and "run-bad" in in_a and "run-other" not in in_a

    both = client.get(
        f"/admin/runs/run/?experiment__id__exact={exp_a.pk}&state__exact=FAILED"
    ).content.decode()
    assert "run-bad" in both and "run-ok" not in both and "run-other" not in both


@pytest.mark.django_db
def test_admin_runs_are_read_only(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff_user)
    run = RunFactory()
    assert client.get("/admin/runs/run/add/").status_code == 403
    page = client.get(f"/admin/runs/run/{run.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.post(f"/admin/runs/run/{run.pk}/delete/", {"post": "yes"}).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/admin/core/namespace/",
        "/admin/core/apitoken/",
        "/admin/pipelines/pipeline/",
        "/admin/pipelines/pipelineversion/",
        "/admin/experiments/experiment/",
        "/admin/runs/task/",
        "/admin/runs/taskattempt/",
        "/admin/artifacts/artifact/",
        "/admin/schedules/recurringrun/",
    ],
)
def test_every_model_is_registered(client, staff_user, path: str) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff_user)
    assert client.get(path).status_code == 200
