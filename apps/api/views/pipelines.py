"""PipelineService and PipelineUploadService."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import errors, schema, wire
from apps.api.listing import PIPELINE_VERSIONS, PIPELINES
from apps.api.parsing import Message, query_flag, query_text, read_body
from apps.api.views.base import EMPTY, KfpView, answer, list_page, namespace_for
from apps.core.exceptions import InvalidInput, NotFound
from apps.engine.untrusted import InputError, loads_json
from apps.pipelines.selectors import (
    pipeline_get,
    pipeline_get_by_name,
    pipeline_list,
    pipeline_version_get,
    pipeline_version_list,
)
from apps.pipelines.services import (
    pipeline_create,
    pipeline_create_from_spec,
    pipeline_create_from_upload,
    pipeline_delete,
    pipeline_update,
    pipeline_version_create_from_spec,
    pipeline_version_create_from_upload,
    pipeline_version_delete,
    pipeline_version_update,
)

TAG = "PipelineService"
PIPELINE_ID = schema.path("pipeline_id", "The pipeline's id.")
VERSION_ID = schema.path("pipeline_version_id", "The pipeline version's id.")


def _checked_url(url: str) -> str:
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise InvalidInput("code_source_url must be an http(s) URL", field="code_source_url") from None
    return url


def _spec_of(version: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] | None = version.get("pipeline_spec")
    if spec is None:
        if "package_url" in version:
            raise InvalidInput(
                "Canal does not fetch pipelines from URLs; send the spec in pipeline_spec, "
                "or upload the file to /apis/v2beta1/pipelines/upload",
                field="package_url",
            )
        raise InvalidInput("pipeline_version.pipeline_spec is required", field="pipeline_spec")
    return spec


def _display_name_update(request: Request, serializer: type[Message]) -> str:
    """The one field UpdatePipeline/UpdatePipelineVersion change in Canal. KFP also
    updates tags; Canal stores none, so a non-empty ``tags`` is refused rather than
    silently dropped."""
    body = read_body(request, serializer)
    if body.get("tags"):
        raise InvalidInput("Canal does not store tags; only display_name can be changed", field="tags")
    return str(body.get("display_name", ""))


class PipelineListView(KfpView):
    @extend_schema(
        operation_id="pipeline_service_list_pipelines",
        tags=[TAG],
        parameters=[schema.NAMESPACE, *schema.LIST_PARAMETERS],
        responses=schema.responses(schema.ListPipelinesSerializer),
    )
    def get(self, request: Request) -> Response:
        namespace = namespace_for(request.user, query_text(request.query_params, "namespace"))
        qs = pipeline_list(user=request.user, namespace=namespace)
        return list_page(request, qs, PIPELINES, schema.ListPipelinesSerializer, wire.pipeline)

    @extend_schema(
        operation_id="pipeline_service_create_pipeline",
        tags=[TAG],
        request=schema.PipelineCreateSerializer,
        responses=schema.responses(schema.PipelineSerializer),
        description=(
            "Create a pipeline with no version yet (add versions with upload_version or "
            "POST .../versions). Named by name, else display_name; tags are checked, not stored."
        ),
    )
    def post(self, request: Request) -> Response:
        body = read_body(request, schema.PipelineCreateSerializer)
        created = pipeline_create(
            namespace=namespace_for(request.user, body.get("namespace")),
            actor=request.user,
            name=body.get("name") or None,
            display_name=body.get("display_name") or None,
            description=body.get("description", ""),
        )
        return answer(schema.PipelineSerializer, wire.pipeline(created))


class PipelineCreateView(KfpView):
    @extend_schema(
        operation_id="pipeline_service_create_pipeline_and_version",
        tags=[TAG],
        request=schema.CreatePipelineAndVersionSerializer,
        responses=schema.responses(schema.PipelineSerializer),
        description="Create a pipeline and its first version from a spec in the body.",
    )
    def post(self, request: Request) -> Response:
        body = read_body(request, schema.CreatePipelineAndVersionSerializer)
        pipeline, version = body.get("pipeline") or {}, body.get("pipeline_version") or {}
        created = pipeline_create_from_spec(
            namespace=namespace_for(request.user, pipeline.get("namespace")),
            actor=request.user,
            spec=_spec_of(version),
            name=pipeline.get("name") or None,
            display_name=pipeline.get("display_name") or None,
            description=pipeline.get("description", ""),
            code_source_url=_checked_url(version.get("code_source_url", "")),
        )
        return answer(schema.PipelineSerializer, wire.pipeline(created.pipeline))


class PipelineByNameView(KfpView):
    @extend_schema(
        operation_id="pipeline_service_get_pipeline_by_name",
        tags=[TAG],
        parameters=[schema.path("name", "The pipeline's name."), schema.NAMESPACE],
        responses=schema.responses(schema.PipelineSerializer),
    )
    def get(self, request: Request, name: str) -> Response:
        namespace = namespace_for(request.user, query_text(request.query_params, "namespace"))
        found = pipeline_get_by_name(user=request.user, namespace=namespace, name=name)
        if found is None:
            raise NotFound(f"pipeline {name!r} not found in namespace {namespace.name!r}")
        return answer(schema.PipelineSerializer, wire.pipeline(found))


class PipelineDetailView(KfpView):
    @extend_schema(
        operation_id="pipeline_service_get_pipeline",
        tags=[TAG],
        parameters=[PIPELINE_ID],
        responses=schema.responses(schema.PipelineSerializer),
    )
    def get(self, request: Request, pipeline_id: str) -> Response:
        pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
        return answer(schema.PipelineSerializer, wire.pipeline(pipeline))

    @extend_schema(
        operation_id="pipeline_service_update_pipeline",
        tags=[TAG],
        parameters=[PIPELINE_ID],
        request=schema.PipelineUpdateSerializer,
        responses=schema.responses(schema.PipelineSerializer),
        description="Change the pipeline's display_name (KFP also changes tags; Canal stores none).",
    )
    def patch(self, request: Request, pipeline_id: str) -> Response:
        display_name = _display_name_update(request, schema.PipelineUpdateSerializer)
        pipeline = pipeline_update(
            actor=request.user,
            pipeline=pipeline_get(user=request.user, pipeline_id=pipeline_id),
            display_name=display_name,
        )
        return answer(schema.PipelineSerializer, wire.pipeline(pipeline))

    @extend_schema(
        operation_id="pipeline_service_delete_pipeline",
        tags=[TAG],
        parameters=[
            PIPELINE_ID,
            schema.query("cascade", "Also delete the pipeline's versions.", OpenApiTypes.BOOL),
        ],
        responses=schema.responses(schema.EMPTY),
    )
    def delete(self, request: Request, pipeline_id: str) -> Response:
        cascade = query_flag(request.query_params, "cascade")
        pipeline_delete(
            actor=request.user,
            pipeline=pipeline_get(user=request.user, pipeline_id=pipeline_id),
            cascade=cascade,
        )
        return Response(EMPTY)


class PipelineVersionListView(KfpView):
    @extend_schema(
        operation_id="pipeline_service_list_pipeline_versions",
        tags=[TAG],
        parameters=[PIPELINE_ID, *schema.LIST_PARAMETERS],
        responses=schema.responses(schema.ListPipelineVersionsSerializer),
    )
    def get(self, request: Request, pipeline_id: str) -> Response:
        pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
        qs = pipeline_version_list(pipeline=pipeline)

        def to_wire(version: Any) -> dict[str, Any]:
            return wire.pipeline_version(version, with_spec=False)

        return list_page(request, qs, PIPELINE_VERSIONS, schema.ListPipelineVersionsSerializer, to_wire)

    @extend_schema(
        operation_id="pipeline_service_create_pipeline_version",
        tags=[TAG],
        parameters=[PIPELINE_ID],
        request=schema.PipelineVersionSerializer,
        responses=schema.responses(schema.PipelineVersionSerializer),
        description="Add a version from a spec in the body (pipeline_spec; URLs are not fetched).",
    )
    def post(self, request: Request, pipeline_id: str) -> Response:
        pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
        body = read_body(request, schema.PipelineVersionSerializer)
        version = pipeline_version_create_from_spec(
            pipeline=pipeline,
            actor=request.user,
            spec=_spec_of(body),
            name=body.get("name") or body.get("display_name") or None,
            description=body.get("description", ""),
            code_source_url=_checked_url(body.get("code_source_url", "")),
        )
        return answer(schema.PipelineVersionSerializer, wire.pipeline_version(version))


class PipelineVersionDetailView(KfpView):
    @extend_schema(
        operation_id="pipeline_service_get_pipeline_version",
        tags=[TAG],
        parameters=[PIPELINE_ID, VERSION_ID],
        responses=schema.responses(schema.PipelineVersionSerializer),
    )
    def get(self, request: Request, pipeline_id: str, pipeline_version_id: str) -> Response:
        version = pipeline_version_get(
            user=request.user, version_id=pipeline_version_id, pipeline_id=pipeline_id
        )
        return answer(schema.PipelineVersionSerializer, wire.pipeline_version(version))

    @extend_schema(
        operation_id="pipeline_service_update_pipeline_version",
        tags=[TAG],
        parameters=[PIPELINE_ID, VERSION_ID],
        request=schema.PipelineVersionUpdateSerializer,
        responses=schema.responses(schema.PipelineVersionSerializer),
        description="Change the version's display_name (KFP also changes tags; Canal stores none).",
    )
    def patch(self, request: Request, pipeline_id: str, pipeline_version_id: str) -> Response:
        display_name = _display_name_update(request, schema.PipelineVersionUpdateSerializer)
        version = pipeline_version_get(
            user=request.user, version_id=pipeline_version_id, pipeline_id=pipeline_id
        )
        version = pipeline_version_update(actor=request.user, version=version, display_name=display_name)
        return answer(schema.PipelineVersionSerializer, wire.pipeline_version(version))

    @extend_schema(
        operation_id="pipeline_service_delete_pipeline_version",
        tags=[TAG],
        parameters=[PIPELINE_ID, VERSION_ID],
        responses=schema.responses(schema.EMPTY),
    )
    def delete(self, request: Request, pipeline_id: str, pipeline_version_id: str) -> Response:
        version = pipeline_version_get(
            user=request.user, version_id=pipeline_version_id, pipeline_id=pipeline_id
        )
        pipeline_version_delete(actor=request.user, version=version)
        return Response(EMPTY)


# --- Uploads (multipart; errors as {error_message, error_details}) ------------------------

UPLOAD_TAG = "PipelineUploadService"


class UploadView(KfpView):
    parser_classes = [MultiPartParser, FormParser]

    def get_exception_handler(self) -> Callable[..., Response]:
        return errors.upload_exception_handler

    def uploaded(self, request: Request) -> tuple[bytes, str]:
        """The ``uploadfile`` part, refused before reading if it is too large."""
        limit = settings.CANAL_MAX_UPLOAD_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit + 64 * 1024:
            raise InvalidInput(f"the upload is larger than {limit} bytes", field="uploadfile")
        files = request.FILES.getlist("uploadfile")
        if len(files) != 1:
            raise InvalidInput(
                "send the pipeline file in the multipart field 'uploadfile'", field="uploadfile"
            )
        upload = files[0]
        if upload.size is not None and upload.size > limit:
            raise InvalidInput(f"the upload is larger than {limit} bytes", field="uploadfile")
        data = upload.read(limit + 1)
        if len(data) > limit:
            raise InvalidInput(f"the upload is larger than {limit} bytes", field="uploadfile")
        return data, upload.name or "pipeline.yaml"


def _check_tags(params: Any) -> None:
    """KFP's ``tags`` is a JSON map of strings; Canal checks it but does not store tags."""
    raw = params.get("tags")
    if not raw:
        return
    try:
        tags = loads_json(raw)
    except InputError as exc:
        raise InvalidInput(f"tags must be a JSON object of strings: {exc}", field="tags") from None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for _, v in tags.items()):
        raise InvalidInput("tags must be a JSON object of strings", field="tags")


class PipelineUploadView(UploadView):
    @extend_schema(
        operation_id="upload_pipeline",
        tags=[UPLOAD_TAG],
        parameters=[
            schema.query("name", "The pipeline's name (unique in the namespace)."),
            schema.query("display_name", "The name shown in the UI."),
            schema.query("description", "Description."),
            schema.NAMESPACE,
            schema.query("tags", "JSON map of tags (checked, not stored)."),
            schema.query("code_source_url", "An http(s) URL of the pipeline's source code."),
        ],
        request={"multipart/form-data": schema.UploadFileSerializer},
        responses=schema.responses(schema.PipelineSerializer, upload=True),
    )
    def post(self, request: Request) -> Response:
        params = request.query_params
        namespace = namespace_for(request.user, query_text(params, "namespace", max_length=63))
        _check_tags(params)
        name = query_text(params, "name", max_length=255)
        display_name = query_text(params, "display_name", max_length=255)
        description = query_text(params, "description", max_length=64 * 1024)
        code_source_url = _checked_url(query_text(params, "code_source_url", max_length=1000))
        data, filename = self.uploaded(request)
        version = pipeline_create_from_upload(
            namespace=namespace,
            actor=request.user,
            data=data,
            filename=filename,
            name=name or None,
            display_name=display_name or None,
            description=description,
            code_source_url=code_source_url,
        )
        return answer(schema.PipelineSerializer, wire.pipeline(version.pipeline))


class PipelineVersionUploadView(UploadView):
    @extend_schema(
        operation_id="upload_pipeline_version",
        tags=[UPLOAD_TAG],
        parameters=[
            schema.query("pipelineid", "The pipeline to add the version to (required)."),
            schema.query("name", "The version's name (unique in the pipeline)."),
            schema.query("display_name", "Used as the name when name is not given."),
            schema.query("description", "Description."),
            schema.query("tags", "JSON map of tags (checked, not stored)."),
            schema.query("code_source_url", "An http(s) URL of the pipeline's source code."),
        ],
        request={"multipart/form-data": schema.UploadFileSerializer},
        responses=schema.responses(schema.PipelineVersionSerializer, upload=True),
    )
    def post(self, request: Request) -> Response:
        params = request.query_params
        pipeline_id = query_text(params, "pipelineid", max_length=64)
        if not pipeline_id:
            raise InvalidInput("pipelineid is required", field="pipelineid")
        pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
        _check_tags(params)
        name = query_text(params, "name", max_length=255) or query_text(
            params, "display_name", max_length=255
        )
        description = query_text(params, "description", max_length=64 * 1024)
        code_source_url = _checked_url(query_text(params, "code_source_url", max_length=1000))
        data, filename = self.uploaded(request)
        version = pipeline_version_create_from_upload(
            pipeline=pipeline,
            actor=request.user,
            data=data,
            filename=filename,
            name=name or None,
            description=description,
            code_source_url=code_source_url,
        )
        return answer(schema.PipelineVersionSerializer, wire.pipeline_version(version))
