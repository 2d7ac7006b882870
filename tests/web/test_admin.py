"""The admin lists runs, filterable by state and experiment; runs are read-only records
with terminate, archive, restore and delete actions through the services; JSON documents
are shown pretty-printed and escaped; experiments are named with their namespace."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from django.contrib.auth.models import Permission

from apps.core.choices import RuntimeState, StorageState
from apps.runs.models import Run
from tests.factories import (
    ExperimentFactory,
    NamespaceFactory,
    PipelineVersionFactory,
    RecurringRunFactory,
    RunFactory,
    UserFactory,
)


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
def test_admin_runs_are_read_only_records(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff_user)
    run = RunFactory()
    assert client.get("/admin/runs/run/add/").status_code == 403
    page = client.get(f"/admin/runs/run/{run.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    # Nothing is edited through the change form, even when posted.
    client.post(f"/admin/runs/run/{run.pk}/change/", {"display_name": "renamed"})
    assert Run.objects.get(pk=run.pk).display_name == run.display_name


def _act(client, action: str, runs: list, **extra: str):  # type: ignore[no-untyped-def,type-arg]
    return client.post(
        "/admin/runs/run/",
        {"action": action, "_selected_action": [str(r.pk) for r in runs], **extra},
        follow=True,
    )


def _messages(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in response.context["messages"]]


@pytest.mark.django_db
def test_admin_terminates_runs_through_the_service(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff_user)
    running = RunFactory(display_name="busy", state=RuntimeState.RUNNING)
    finished = RunFactory(display_name="done", state=RuntimeState.SUCCEEDED)
    changelist = client.get("/admin/runs/run/").content.decode()
    assert 'value="terminate_selected"' in changelist and 'value="archive_selected"' in changelist
    response = _act(client, "terminate_selected", [running, finished])
    # The running run goes CANCELING, as from the UI; the finished one is refused, said so.
    assert Run.objects.get(pk=running.pk).state == RuntimeState.CANCELING
    assert Run.objects.get(pk=finished.pk).state == RuntimeState.SUCCEEDED
    said = _messages(response)
    assert "Terminated 1 run." in said
    assert any(m.startswith("done: run is already SUCCEEDED") for m in said), said
    # The service recorded the operator's transition in the run's history.
    assert Run.objects.get(pk=running.pk).state_history[-1]["state"] == RuntimeState.CANCELING


@pytest.mark.django_db
def test_admin_archives_and_restores_runs(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff_user)
    runs = [RunFactory(state=RuntimeState.SUCCEEDED) for _ in range(2)]
    response = _act(client, "archive_selected", runs)
    assert "Archived 2 runs." in _messages(response)
    assert set(Run.objects.values_list("storage_state", flat=True)) == {StorageState.ARCHIVED}
    archived_only = client.get("/admin/runs/run/?storage_state__exact=ARCHIVED").content.decode()
    assert all(r.display_name in archived_only for r in runs)
    _act(client, "unarchive_selected", runs[:1])
    assert Run.objects.get(pk=runs[0].pk).storage_state == StorageState.AVAILABLE
    assert Run.objects.get(pk=runs[1].pk).storage_state == StorageState.ARCHIVED


@pytest.mark.django_db
def test_admin_deletes_runs_after_confirmation_through_the_service(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    from apps.runs.models import Task
    from tests.factories import TaskFactory

    client.force_login(staff_user)
    active = RunFactory(display_name="still-running", state=RuntimeState.RUNNING)
    done = RunFactory(display_name="finished", state=RuntimeState.FAILED)
    TaskFactory(run=done, key="root/a")
    # Django's confirmation page first: nothing is deleted yet, and the tasks that go
    # with the run do not make Django refuse for want of a permission on tasks.
    confirm = client.post(
        "/admin/runs/run/", {"action": "delete_selected", "_selected_action": [str(active.pk), str(done.pk)]}
    )
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert 'name="post"' in page and "permission to delete" not in page
    assert Run.objects.count() == 2
    response = _act(client, "delete_selected", [active, done], post="yes")
    said = _messages(response)
    assert "Deleted 1 runs." in said
    assert any("still-running: run is RUNNING; terminate it before deleting it" in m for m in said), said
    assert list(Run.objects.values_list("display_name", flat=True)) == ["still-running"]
    assert not Task.objects.filter(run_id=done.pk).exists()

    # The single-object delete page: confirmation, then the service's refusal as a message.
    single = client.get(f"/admin/runs/run/{active.pk}/delete/")
    assert single.status_code == 200 and 'name="post"' in single.content.decode()
    refused = client.post(f"/admin/runs/run/{active.pk}/delete/", {"post": "yes"}, follow=True)
    assert "terminate it before deleting it" in refused.content.decode()
    assert Run.objects.filter(pk=active.pk).exists()


@pytest.mark.django_db
def test_staff_without_the_run_permissions_get_a_message_not_a_change(client) -> None:  # type: ignore[no-untyped-def]
    viewer = UserFactory(username="viewer-staff", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_run"))
    client.force_login(viewer)
    run = RunFactory(state=RuntimeState.RUNNING)
    changelist = client.get("/admin/runs/run/")
    assert changelist.status_code == 200
    page = changelist.content.decode()
    assert "terminate_selected" not in page and "delete_selected" not in page
    for action in ("terminate_selected", "archive_selected", "delete_selected"):
        response = _act(client, action, [run], post="yes")
        assert response.status_code == 200
        assert f"You may not use the action '{action}' on runs" in " ".join(_messages(response))
    after = Run.objects.get(pk=run.pk)
    assert (after.state, after.storage_state) == (RuntimeState.RUNNING, StorageState.AVAILABLE)
    assert client.post(f"/admin/runs/run/{run.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Run.objects.filter(pk=run.pk).exists()


def _pre(html: str, label: str) -> str:
    """The text of the <pre> of the read-only field labelled ``label``."""
    at = html.index(f"<label>{label}:</label>")
    match = re.search(r'<pre class="admin-json">(.*?)</pre>', html[at:], re.S)
    assert match is not None, label
    return match.group(1)


@pytest.mark.django_db
def test_admin_shows_specs_pretty_printed_and_escaped(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff_user)
    hostile = "</pre><script>alert(1)</script>"
    run = RunFactory(runtime_parameters={"note": hostile, "n": 3})
    html = client.get(f"/admin/runs/run/{run.pk}/change/").content.decode()
    assert "<script>alert(1)</script>" not in html
    params = _pre(html, "Runtime parameters")
    assert json.loads(unescape(params)) == {"note": hostile, "n": 3}
    assert '\n  "note": ' in unescape(params)  # indented, one key a line
    spec = _pre(html, "Pipeline spec")
    assert json.loads(unescape(spec)) == run.pipeline_spec
    assert unescape(spec) == json.dumps(run.pipeline_spec, indent=2, ensure_ascii=False)

    version = PipelineVersionFactory()
    html = client.get(f"/admin/pipelines/pipelineversion/{version.pk}/change/").content.decode()
    spec = _pre(html, "Pipeline spec")
    assert json.loads(unescape(spec)) == version.pipeline_spec
    assert unescape(spec).count("\n") > 3
    assert 'name="_save"' not in html


@pytest.mark.django_db
def test_admin_names_experiments_with_their_namespace(client, staff_user) -> None:  # type: ignore[no-untyped-def]
    from apps.experiments.selectors import DEFAULT_EXPERIMENT_NAME

    client.force_login(staff_user)
    spaces = [NamespaceFactory(name="team-a"), NamespaceFactory(name="team-b")]
    defaults = [ExperimentFactory(namespace=ns, display_name=DEFAULT_EXPERIMENT_NAME) for ns in spaces]
    runs = [RunFactory(namespace=ns, experiment=e) for ns, e in zip(spaces, defaults, strict=True)]
    RecurringRunFactory(namespace=spaces[1], experiment=defaults[1])
    assert str(defaults[0]) == "team-a / Default"

    experiments = client.get("/admin/experiments/experiment/").content.decode()
    assert "team-a / Default" in experiments and "team-b / Default" in experiments

    run_list = client.get("/admin/runs/run/").content.decode()
    for ns in ("team-a", "team-b"):
        # Once in the list, once in the experiment filter.
        assert run_list.count(f"{ns} / Default") == 2, ns
    filtered = client.get(f"/admin/runs/run/?experiment__id__exact={defaults[1].pk}").content.decode()
    assert str(runs[1].pk) in filtered and str(runs[0].pk) not in filtered

    schedules = client.get("/admin/schedules/recurringrun/").content.decode()
    assert schedules.count("team-b / Default") == 2 and "team-a / Default" in schedules


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
