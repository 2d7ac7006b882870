"""Pipeline pages as the UI issue asks: the list's columns, the detail's actions, and a
delete that is refused, with a clear message, while runs use the pipeline."""

from __future__ import annotations

import pytest

from apps.core.choices import RuntimeState
from apps.pipelines.models import Pipeline
from tests.factories import PipelineFactory, PipelineVersionFactory, RunFactory


@pytest.mark.django_db
def test_list_columns(logged_in) -> None:  # type: ignore[no-untyped-def]
    pipeline = PipelineFactory(display_name="trainer", description="trains a model")
    PipelineVersionFactory(pipeline=pipeline, display_name="v1")
    PipelineVersionFactory(pipeline=pipeline, display_name="v2")
    html = logged_in.get("/pipelines/").content.decode()
    assert ">trainer<" in html and "trains a model" in html and ">v2<" in html and "<time" in html


@pytest.mark.django_db
def test_detail_offers_create_run_and_upload_version(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    html = logged_in.get(f"/pipelines/{version.pipeline_id}/").content.decode()
    assert f'href="/runs/new/?version={version.pk}"' in html
    assert f'href="/pipelines/{version.pipeline_id}/upload-version/"' in html
    assert "<svg" in html and 'id="dag-nodes"' in html and 'id="spec-source"' in html


@pytest.mark.django_db
def test_delete_is_refused_while_runs_use_it(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    RunFactory(pipeline_version=version, state=RuntimeState.SUCCEEDED)
    response = logged_in.post(f"/pipelines/{version.pipeline_id}/delete/", follow=True)
    assert "cannot be deleted: 1 run(s) reference it. Delete those runs first." in response.content.decode()
    assert Pipeline.objects.filter(pk=version.pipeline_id).exists()
    unused = PipelineVersionFactory()
    response = logged_in.post(f"/pipelines/{unused.pipeline_id}/delete/")
    assert response["Location"] == "/pipelines/"
    assert not Pipeline.objects.filter(pk=unused.pipeline_id).exists()
