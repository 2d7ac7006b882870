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


# --- the admin writes through the services -------------------------------------------------


def _delete_selected(client, url: str, pks: list) -> object:  # type: ignore[no-untyped-def,type-arg]
    """Django's "Delete selected" action, confirmed."""
    return client.post(
        url,
        {"action": "delete_selected", "_selected_action": [str(pk) for pk in pks], "post": "yes"},
        follow=True,
    )


@pytest.mark.django_db
def test_admin_deletes_through_the_service_and_reports_its_refusal(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    from apps.experiments.models import Experiment
    from apps.experiments.selectors import DEFAULT_EXPERIMENT_NAME

    client.force_login(staff_user)
    default = ExperimentFactory(display_name=DEFAULT_EXPERIMENT_NAME)
    spare = ExperimentFactory(display_name="spare")
    page = _delete_selected(client, "/admin/experiments/experiment/", [default.pk, spare.pk])
    html = page.content.decode().lower()
    # The service keeps the Default experiment (Django alone would have deleted it).
    assert "the default experiment cannot be deleted" in html and "deleted 1 experiments" in html
    assert list(Experiment.objects.values_list("display_name", flat=True)) == [DEFAULT_EXPERIMENT_NAME]

    single = client.post(f"/admin/experiments/experiment/{default.pk}/delete/", {"post": "yes"}, follow=True)
    assert "the default experiment cannot be deleted" in single.content.decode().lower()
    assert Experiment.objects.filter(pk=default.pk).exists()


@pytest.mark.django_db
def test_admin_archive_action_is_the_service_archive(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    from apps.core.choices import StorageState
    from apps.runs.models import Run

    client.force_login(staff_user)
    run = RunFactory(state=RuntimeState.SUCCEEDED)
    client.post(
        "/admin/experiments/experiment/",
        {"action": "archive_selected", "_selected_action": [str(run.experiment_id)]},
    )
    # As in the UI and the API: archiving an experiment archives its runs.
    assert Run.objects.get(pk=run.pk).storage_state == StorageState.ARCHIVED


@pytest.mark.django_db
def test_admin_creates_namespaces_and_leaves_members_to_the_members_page(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    from apps.core.models import Namespace

    client.force_login(staff_user)
    response = client.post(
        "/admin/core/namespace/add/",
        {
            "name": "research",
            "description": "R&D",
            "membership_set-TOTAL_FORMS": "0",
            "membership_set-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    created = Namespace.objects.get(name="research")
    assert created.description == "R&D"
    change = client.get(f"/admin/core/namespace/{created.pk}/change/").content.decode()
    assert "/namespaces/research/members/" in change
    assert client.get("/admin/core/membership/add/").status_code == 403
    membership = staff_user.namespaces.through.objects.filter(user=staff_user).first()
    assert client.post(f"/admin/core/membership/{membership.pk}/delete/", {"post": "yes"}).status_code == 403


@pytest.mark.django_db
def test_admin_revokes_tokens_through_the_service(client, staff_user, user) -> None:  # type: ignore[no-untyped-def]
    from apps.core.models import ApiToken
    from apps.core.services import api_token_create

    client.force_login(staff_user)
    token, _ = api_token_create(actor=user, user=user)
    client.post("/admin/core/apitoken/", {"action": "revoke", "_selected_action": [str(token.pk)]})
    assert ApiToken.objects.get(pk=token.pk).revoked
    assert client.get(f"/admin/core/apitoken/{token.pk}/delete/").status_code == 403


@pytest.mark.django_db
def test_members_who_are_not_staff_get_no_admin(client, user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(user)  # the owner of 'default'
    version = RunFactory().pipeline_version
    response = client.post(f"/admin/pipelines/pipelineversion/{version.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    from apps.pipelines.models import PipelineVersion

    assert PipelineVersion.objects.filter(pk=version.pk).exists()
