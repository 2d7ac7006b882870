"""Uploading pipelines through the forms: valid files land, hostile files are refused
with a clear error and write nothing."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from apps.core.choices import PipelineFormat
from apps.pipelines.models import Pipeline, PipelineVersion
from tests.factories import HELLO_IR_TEXT, PipelineVersionFactory
from tests.paths import ARGO_EXAMPLES, KFP_VALID


def _upload(client, filename: str, data: bytes, **fields):  # type: ignore[no-untyped-def]
    return client.post("/pipelines/upload/", {"file": SimpleUploadedFile(filename, data), **fields})


def _assert_nothing_written() -> None:
    assert Pipeline.objects.count() == 0
    assert PipelineVersion.objects.count() == 0


@pytest.mark.django_db
def test_upload_corpus_ir_creates_pipeline_and_version(logged_in) -> None:  # type: ignore[no-untyped-def]
    data = (KFP_VALID / "critical" / "add_numbers.yaml").read_bytes()
    response = _upload(logged_in, "add_numbers.yaml", data, description="adds")
    assert response.status_code == 302
    pipeline = Pipeline.objects.get()
    version = pipeline.versions.get()
    assert response["Location"] == f"/pipelines/{pipeline.pk}/"
    assert version.format == PipelineFormat.KFP_IR
    assert version.source == data.decode()
    assert version.pipeline_spec["pipelineInfo"]["name"] == pipeline.name
    assert len(version.content_hash) == 64
    assert pipeline.description == "adds"

    page = logged_in.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html  # the static DAG, drawn by graphviz, inline
    assert "add-numbers" in html or "add_numbers" in html


@pytest.mark.django_db
def test_upload_argo_workflow(logged_in) -> None:  # type: ignore[no-untyped-def]
    data = (ARGO_EXAMPLES / "dag-diamond.yaml").read_bytes()
    response = _upload(logged_in, "dag-diamond.yaml", data, name="diamond")
    assert response.status_code == 302
    version = PipelineVersion.objects.get()
    assert version.format == PipelineFormat.ARGO
    assert logged_in.get(response["Location"]).status_code == 200


@pytest.mark.django_db
def test_upload_new_version_and_duplicate_name_refused(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    pipeline = version.pipeline
    url = f"/pipelines/{pipeline.pk}/upload-version/"
    ok = logged_in.post(url, {"file": SimpleUploadedFile("p.yaml", HELLO_IR_TEXT.encode()), "name": "second"})
    assert ok.status_code == 302
    assert pipeline.versions.count() == 2
    dup = logged_in.post(
        url, {"file": SimpleUploadedFile("p.yaml", HELLO_IR_TEXT.encode()), "name": "second"}
    )
    assert dup.status_code == 400
    assert "already has a version named" in dup.content.decode()
    assert pipeline.versions.count() == 2


@pytest.mark.django_db
def test_duplicate_pipeline_name_is_refused(logged_in) -> None:  # type: ignore[no-untyped-def]
    assert _upload(logged_in, "a.yaml", HELLO_IR_TEXT.encode(), name="same").status_code == 302
    again = _upload(logged_in, "a.yaml", HELLO_IR_TEXT.encode(), name="same")
    assert again.status_code == 400
    assert "already exists" in again.content.decode()
    assert Pipeline.objects.count() == 1


def _alias_bomb(levels: int) -> bytes:
    lines = ["a0: &a0 [x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]")
    return ("\n".join(lines) + "\n").encode()


def _zip_with(name: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, payload)
    return buf.getvalue()


HOSTILE = {
    "alias-bomb": ("bomb.yaml", _alias_bomb(1000), "alias"),
    "python-tag": (
        "evil.yaml",
        b"pipelineInfo: !!python/object/apply:os.system ['touch /tmp/canal-pwned']\n",
        "python/object/apply",
    ),
    "invalid-utf8": ("bad.yaml", b"pipelineInfo:\n  name: \xff\xfe\xfa\n", "UTF-8"),
    "zip-slip": ("evil.zip", _zip_with("../../etc/pipeline.yaml", HELLO_IR_TEXT.encode()), ".."),
    # The display name became the pipeline's name, a column of 255: an HTTP 500 on MySQL.
    "long-display-name": (
        "long.yaml",
        HELLO_IR_TEXT.replace("  name: hello\n", f"  name: hello\n  displayName: {'d' * 300}\n", 1).encode(),
        "pipelineInfo.displayName is 300 characters long; at most 255 are allowed",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_upload_gets_form_error_and_writes_nothing(logged_in, case: str) -> None:  # type: ignore[no-untyped-def]
    filename, data, expected = HOSTILE[case]
    response = _upload(logged_in, filename, data, name=f"hostile-{case}")
    assert response.status_code == 400
    body = response.content.decode()
    assert expected.lower() in body.lower(), body
    assert 'class="field-error"' in body
    _assert_nothing_written()


@pytest.mark.django_db
@override_settings(CANAL_MAX_UPLOAD_BYTES=2048)
def test_file_over_the_size_limit_is_refused(logged_in) -> None:  # type: ignore[no-untyped-def]
    data = HELLO_IR_TEXT.encode() + b"#" + b"x" * 4096 + b"\n"
    response = _upload(logged_in, "big.yaml", data)
    assert response.status_code == 400
    assert "limit is 2,048 bytes" in response.content.decode()
    _assert_nothing_written()


@pytest.mark.django_db
def test_upload_without_csrf_token_is_forbidden(csrf_client) -> None:  # type: ignore[no-untyped-def]
    response = _upload(csrf_client, "a.yaml", HELLO_IR_TEXT.encode())
    assert response.status_code == 403
    _assert_nothing_written()


@pytest.mark.django_db
def test_delete_is_refused_while_runs_reference_the_pipeline(logged_in) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import RunFactory

    run = RunFactory()
    pipeline = run.pipeline_version.pipeline
    response = logged_in.post(f"/pipelines/{pipeline.pk}/delete/", follow=True)
    assert "1 run(s) reference it" in response.content.decode()
    assert Pipeline.objects.filter(pk=pipeline.pk).exists()
