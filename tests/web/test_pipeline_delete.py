"""Bulk delete on the pipelines list and deleting one version on the pipeline page:
owners only (the buttons are hidden from others, a POST is refused), KFP's rule that a
pipeline with versions is deleted only with cascade, and nothing deleted that runs use."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from apps.core.choices import RuntimeState
from apps.core.models import Membership
from apps.pipelines.models import Pipeline, PipelineVersion
from tests.factories import PipelineFactory, PipelineVersionFactory, RunFactory, UserFactory


def _texts(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in get_messages(response.wsgi_request)]


def _as(role: str) -> Client:
    client = Client()
    client.force_login(UserFactory(namespace__role=role))
    return client


@pytest.mark.django_db
def test_bulk_delete_deletes_the_free_ones_and_names_the_refused(logged_in) -> None:  # type: ignore[no-untyped-def]
    free = [PipelineVersionFactory().pipeline for _ in range(2)]
    used = PipelineVersionFactory()
    RunFactory(pipeline_version=used, state=RuntimeState.SUCCEEDED)
    untouched = PipelineVersionFactory().pipeline
    response = logged_in.post(
        "/pipelines/bulk-delete/",
        {"pipeline": [str(p.pk) for p in free] + [str(used.pipeline_id)], "cascade": "on"},
    )
    assert response.status_code == 302 and response["Location"] == "/pipelines/"
    assert not Pipeline.objects.filter(pk__in=[p.pk for p in free]).exists()
    assert Pipeline.objects.filter(pk=used.pipeline_id).exists()
    assert Pipeline.objects.filter(pk=untouched.pk).exists()
    texts = _texts(response)
    assert texts[0].startswith("Deleted 2 pipelines:")
    assert any("was not deleted" in t and "1 run(s) reference it" in t for t in texts)


@pytest.mark.django_db
def test_bulk_delete_without_cascade_keeps_pipelines_that_have_versions(logged_in) -> None:  # type: ignore[no-untyped-def]
    with_version = PipelineVersionFactory().pipeline
    empty = PipelineFactory()
    response = logged_in.post("/pipelines/bulk-delete/", {"pipeline": [str(with_version.pk), str(empty.pk)]})
    assert Pipeline.objects.filter(pk=with_version.pk).exists()
    assert not Pipeline.objects.filter(pk=empty.pk).exists()
    assert any("still has 1 version(s)" in t for t in _texts(response))


@pytest.mark.django_db
def test_bulk_delete_with_nothing_valid_selected(logged_in) -> None:  # type: ignore[no-untyped-def]
    PipelineVersionFactory()
    response = logged_in.post("/pipelines/bulk-delete/", {"pipeline": ["nope", "\x00", ""], "cascade": "on"})
    assert response.status_code == 302
    assert _texts(response) == ["Select at least one pipeline to delete."]
    assert Pipeline.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.VIEWER, Membership.Role.EDITOR])
def test_below_owner_sees_no_delete_and_is_refused(role: str) -> None:
    version = PipelineVersionFactory()
    other = PipelineVersionFactory(pipeline=version.pipeline)
    client = _as(role)
    listing = client.get("/pipelines/").content.decode()
    assert "/pipelines/bulk-delete/" not in listing and 'name="pipeline"' not in listing
    detail = client.get(f"/pipelines/{version.pipeline_id}/").content.decode()
    assert "/versions/" not in detail
    bulk = client.post("/pipelines/bulk-delete/", {"pipeline": [str(version.pipeline_id)], "cascade": "on"})
    assert bulk.status_code == 403
    one = client.post(f"/pipelines/{version.pipeline_id}/versions/{other.pk}/delete/")
    assert one.status_code == 403
    assert PipelineVersion.objects.count() == 2


@pytest.mark.django_db
def test_owner_sees_the_controls(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    listing = logged_in.get("/pipelines/").content.decode()
    assert 'action="/pipelines/bulk-delete/"' in listing
    assert f'name="pipeline" value="{version.pipeline_id}"' in listing
    assert 'name="cascade" value="on" checked' in listing
    detail = logged_in.get(f"/pipelines/{version.pipeline_id}/").content.decode()
    assert f'action="/pipelines/{version.pipeline_id}/versions/{version.pk}/delete/"' in detail


@pytest.mark.django_db
def test_version_delete(logged_in) -> None:  # type: ignore[no-untyped-def]
    old = PipelineVersionFactory(display_name="old")
    new = PipelineVersionFactory(pipeline=old.pipeline, display_name="new")
    RunFactory(pipeline_version=new, state=RuntimeState.SUCCEEDED)
    url = f"/pipelines/{old.pipeline_id}/versions/{{}}/delete/"

    refused = logged_in.post(url.format(new.pk))
    assert refused.status_code == 302 and f"?version={new.pk}" in refused["Location"]
    assert "cannot be deleted: 1 run(s) reference it" in _texts(refused)[0]
    assert PipelineVersion.objects.filter(pk=new.pk).exists()

    done = logged_in.post(url.format(old.pk))
    assert done["Location"] == f"/pipelines/{old.pipeline_id}/"
    assert _texts(done)[-1] == f"Deleted version old of pipeline {old.pipeline.display_name}."
    assert list(PipelineVersion.objects.values_list("pk", flat=True)) == [new.pk]

    # A version of another pipeline, or no such version: 404, nothing deleted.
    stranger = PipelineVersionFactory()
    assert logged_in.post(url.format(stranger.pk)).status_code == 404
    assert logged_in.post(url.format("not-a-uuid")).status_code == 404
    assert logged_in.get(url.format(new.pk)).status_code == 405
    assert PipelineVersion.objects.count() == 2


@pytest.mark.django_db
def test_deletes_need_csrf(csrf_client) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    assert (
        csrf_client.post("/pipelines/bulk-delete/", {"pipeline": [str(version.pipeline_id)]}).status_code
        == 403
    )
    assert (
        csrf_client.post(f"/pipelines/{version.pipeline_id}/versions/{version.pk}/delete/").status_code == 403
    )
    assert PipelineVersion.objects.filter(pk=version.pk).exists()
