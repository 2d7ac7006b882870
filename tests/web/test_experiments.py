"""Experiment pages: create, list with the last five runs, detail tabs, archive/restore."""

from __future__ import annotations

import pytest

from apps.core.choices import RuntimeState, StorageState
from apps.experiments.models import Experiment
from apps.runs.models import Run
from tests.factories import ExperimentFactory, NamespaceFactory, RecurringRunFactory, RunFactory


@pytest.mark.django_db
def test_create_experiment_and_duplicate_name_inline(logged_in) -> None:  # type: ignore[no-untyped-def]
    response = logged_in.post("/experiments/new/", {"display_name": "tuning", "description": "lr sweep"})
    experiment = Experiment.objects.get(display_name="tuning")
    assert response["Location"] == f"/experiments/{experiment.pk}/"
    again = logged_in.post("/experiments/new/", {"display_name": "tuning"})
    assert again.status_code == 400 and "already exists" in again.content.decode()


@pytest.mark.django_db
def test_list_shows_last_five_runs_newest_first_and_archived_tab(logged_in) -> None:  # type: ignore[no-untyped-def]
    experiment = ExperimentFactory(display_name="busy")
    for state in ("FAILED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "RUNNING"):
        RunFactory(experiment=experiment, state=state)
    RunFactory(experiment=experiment, state="CANCELED", storage_state=StorageState.ARCHIVED)
    ExperimentFactory(display_name="old", storage_state=StorageState.ARCHIVED)
    html = logged_in.get("/experiments/").content.decode()
    icons = html[html.index('class="recent-runs"') :].split("</td>", 1)[0]
    assert icons.count("state-icon") == 5
    assert icons.index("state-RUNNING") < icons.index("state-SUCCEEDED")  # newest first
    assert "state-FAILED" not in icons and "state-CANCELED" not in icons  # oldest and archived left out
    assert ">old<" not in html
    assert ">old<" in logged_in.get("/experiments/?view=archived").content.decode()


@pytest.mark.django_db
def test_detail_runs_tabs_and_recurring_runs(logged_in) -> None:  # type: ignore[no-untyped-def]
    experiment = ExperimentFactory()
    RunFactory(experiment=experiment, display_name="kept")
    RunFactory(experiment=experiment, display_name="shelved", storage_state=StorageState.ARCHIVED)
    RunFactory(display_name="elsewhere")
    RecurringRunFactory(experiment=experiment, display_name="nightly")
    html = logged_in.get(f"/experiments/{experiment.pk}/").content.decode()
    assert "kept" in html and "shelved" not in html and "elsewhere" not in html
    html = logged_in.get(f"/experiments/{experiment.pk}/?view=archived").content.decode()
    assert "shelved" in html and "kept" not in html
    html = logged_in.get(f"/experiments/{experiment.pk}/?tab=recurring").content.decode()
    assert "nightly" in html


@pytest.mark.django_db
def test_archive_and_restore(logged_in) -> None:  # type: ignore[no-untyped-def]
    experiment = ExperimentFactory()
    run = RunFactory(experiment=experiment, state=RuntimeState.SUCCEEDED)
    assert logged_in.get(f"/experiments/{experiment.pk}/archive/").status_code == 405
    logged_in.post(f"/experiments/{experiment.pk}/archive/")
    assert Experiment.objects.get(pk=experiment.pk).storage_state == StorageState.ARCHIVED
    assert Run.objects.get(pk=run.pk).storage_state == StorageState.ARCHIVED
    page = logged_in.get(f"/experiments/{experiment.pk}/").content.decode()
    assert "Restore" in page and "Create run" not in page
    logged_in.post(f"/experiments/{experiment.pk}/unarchive/")
    assert Experiment.objects.get(pk=experiment.pk).storage_state == StorageState.AVAILABLE


@pytest.mark.django_db
def test_other_namespace_experiment_is_404(logged_in) -> None:  # type: ignore[no-untyped-def]
    experiment = ExperimentFactory(namespace=NamespaceFactory(name="hidden"))
    assert logged_in.get(f"/experiments/{experiment.pk}/").status_code == 404
    assert logged_in.post(f"/experiments/{experiment.pk}/archive/").status_code == 404
    assert Experiment.objects.get(pk=experiment.pk).storage_state == StorageState.AVAILABLE
