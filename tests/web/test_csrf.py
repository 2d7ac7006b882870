"""Every write in the web UI is a POST that needs a CSRF token; the GETs change nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.core.choices import RuntimeState, StorageState
from apps.experiments.models import Experiment
from apps.pipelines.models import Pipeline
from apps.runs.models import Run
from tests.factories import ExperimentFactory, PipelineVersionFactory, RunFactory


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    return {
        "run": RunFactory(state=RuntimeState.FAILED),
        "experiment": ExperimentFactory(),
        "version": version,
        "pipeline": version.pipeline,
    }


def _writes(world) -> list[tuple[str, dict]]:  # type: ignore[no-untyped-def,type-arg]
    run, experiment, version = world["run"], world["experiment"], world["version"]
    return [
        (f"/runs/{run.pk}/terminate/", {}),
        (f"/runs/{run.pk}/retry/", {}),
        (f"/runs/{run.pk}/archive/", {}),
        (f"/runs/{run.pk}/unarchive/", {}),
        (f"/runs/{run.pk}/delete/", {}),
        ("/runs/bulk/", {"action": "delete", "run": [str(run.pk)]}),
        (f"/runs/new/?version={version.pk}", {"display_name": "x", "run_type": "one-off"}),
        ("/experiments/new/", {"display_name": "csrf"}),
        (f"/experiments/{experiment.pk}/archive/", {}),
        (f"/experiments/{experiment.pk}/unarchive/", {}),
        (f"/pipelines/{world['pipeline'].pk}/delete/", {}),
        ("/namespace/", {"namespace": "default"}),
    ]


def _snapshot() -> tuple:  # type: ignore[type-arg]
    return (
        sorted(Run.objects.values_list("pk", "state", "storage_state")),
        sorted(Experiment.objects.values_list("pk", "display_name", "storage_state")),
        Pipeline.objects.count(),
    )


@pytest.mark.django_db
def test_posts_without_a_token_are_refused(csrf_client: Client, world) -> None:  # type: ignore[no-untyped-def]
    before = _snapshot()
    for url, data in _writes(world):
        assert csrf_client.post(url, data).status_code == 403, url
    assert _snapshot() == before


@pytest.mark.django_db
def test_posts_with_the_token_work(csrf_client: Client, world) -> None:  # type: ignore[no-untyped-def]
    page = csrf_client.get(f"/runs/{world['run'].pk}/")
    token = page.cookies["csrftoken"].value
    response = csrf_client.post(f"/runs/{world['run'].pk}/archive/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Run.objects.get(pk=world["run"].pk).storage_state == StorageState.ARCHIVED


@pytest.mark.django_db
def test_action_urls_refuse_get(logged_in, world) -> None:  # type: ignore[no-untyped-def]
    before = _snapshot()
    for url, _ in _writes(world):
        if url.startswith(("/runs/new/", "/experiments/new/")):
            continue  # forms: GET shows them
        assert logged_in.get(url).status_code == 405, url
    assert _snapshot() == before
