"""Upload forms. They only check the shape of the request (a file, sizes, lengths);
parsing and validation of the pipeline itself is the importer's job, called by the
service."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from apps.core.forms import CanalForm

ACCEPTED = ".yaml,.yml,.zip,.tar.gz,.tgz"


def _read_limited(upload: UploadedFile[bytes]) -> bytes:
    limit = settings.CANAL_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise forms.ValidationError(
            f"{upload.name}: the file is {upload.size:,} bytes; the limit is {limit:,} bytes."
        )
    data: bytes = upload.read(limit + 1)
    if len(data) > limit:
        raise forms.ValidationError(f"{upload.name}: the file is larger than the {limit:,}-byte limit.")
    return data


class _UploadForm(CanalForm):
    file = forms.FileField(
        label="Pipeline file",
        help_text="KFP v2 IR (.yaml, .zip, .tar.gz, as written by kfp.compiler) or an Argo Workflow (.yaml).",
        widget=forms.ClearableFileInput(attrs={"accept": ACCEPTED}),
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=10_000)

    def clean_file(self) -> UploadedFile[bytes]:
        upload: UploadedFile[bytes] = self.cleaned_data["file"]
        self.cleaned_data["data"] = _read_limited(upload)
        return upload


class PipelineUploadForm(_UploadForm):
    """Upload a new pipeline: file, name (defaults to the pipeline's own name), description."""

    name = forms.CharField(
        required=False, max_length=255, help_text="Leave empty to use the name inside the file."
    )
    field_order = ["file", "name", "description"]


class PipelineVersionUploadForm(_UploadForm):
    """Upload a new version of an existing pipeline."""

    name = forms.CharField(
        required=False, max_length=255, label="Version name", help_text="Leave empty for the next vN."
    )
    field_order = ["file", "name", "description"]
