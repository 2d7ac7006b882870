"""Write-side operations for pipelines and versions.

Uploads are parsed by the pure importers before anything is written; a refused
file raises InvalidInput with the importer's message (what is wrong, and where),
and the database is untouched. Each create is one transaction.

Every public service takes the acting user (``actor=``) and checks its role in the
pipeline's namespace first (``apps.core.authz``): editors upload, owners delete.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet

from apps.core.authz import Action, Actor, actor_user, namespace_authorize
from apps.core.exceptions import Conflict, FailedPrecondition, InvalidInput
from apps.core.models import Namespace
from apps.importers import ImportedPipeline, PipelineImportError, import_pipeline, import_spec_dict
from apps.pipelines.models import Pipeline, PipelineVersion

MAX_NAME = 255


def _parse_upload(*, data: bytes, filename: str) -> ImportedPipeline:
    try:
        return import_pipeline(data, filename)
    except PipelineImportError as exc:
        raise InvalidInput(str(exc), field="uploadfile") from exc


def _parse_spec(*, spec: dict[str, Any], platform_spec: dict[str, Any] | None) -> ImportedPipeline:
    try:
        return import_spec_dict(spec, platform_spec)
    except PipelineImportError as exc:
        raise InvalidInput(str(exc), field="pipeline_spec") from exc


def _clean_name(value: str | None, *, field: str) -> str:
    name = (value or "").strip()
    if len(name) > MAX_NAME:
        raise InvalidInput(f"{field} is longer than {MAX_NAME} characters", field=field)
    if any(ord(ch) < 32 for ch in name):
        raise InvalidInput(f"{field} must not contain control characters", field=field)
    return name


def _default_name(imported: ImportedPipeline, filename: str) -> str:
    return imported.display_name or imported.name or PurePath(filename).stem or "pipeline"


def _version_from(
    imported: ImportedPipeline,
    *,
    pipeline: Pipeline,
    name: str,
    description: str,
    actor: Actor,
    code_source_url: str = "",
) -> PipelineVersion:
    return PipelineVersion.objects.create(
        pipeline=pipeline,
        name=name,
        display_name=name,
        description=description,
        source=imported.source_text,
        source_filename=imported.source_filename[:255],
        format=imported.format,
        pipeline_spec=imported.pipeline_spec,
        platform_spec=imported.platform_spec,
        content_hash=imported.content_hash,
        code_source_url=code_source_url,
        created_by=actor_user(actor),
    )


def _create_pipeline_with_version(
    imported: ImportedPipeline,
    *,
    namespace: Namespace,
    actor: Actor,
    name: str,
    display_name: str,
    description: str,
    code_source_url: str = "",
) -> PipelineVersion:
    try:
        with transaction.atomic():
            if Pipeline.objects.filter(namespace=namespace, name=name).exists():
                raise Conflict(
                    f"a pipeline named {name!r} already exists in namespace {namespace.name!r}", field="name"
                )
            pipeline = Pipeline.objects.create(
                namespace=namespace,
                name=name,
                display_name=display_name or name,
                description=description,
                created_by=actor_user(actor),
            )
            # KFP names a pipeline's first version after the pipeline itself.
            return _version_from(
                imported,
                pipeline=pipeline,
                name=name,
                description=description,
                actor=actor,
                code_source_url=code_source_url,
            )
    except IntegrityError as exc:  # lost a race with a concurrent upload of the same name
        raise Conflict(f"a pipeline named {name!r} already exists", field="name") from exc


def pipeline_create_from_upload(
    *,
    actor: Actor,
    namespace: Namespace,
    data: bytes,
    filename: str,
    name: str | None = None,
    display_name: str | None = None,
    description: str = "",
    code_source_url: str = "",
) -> PipelineVersion:
    """Parse an uploaded pipeline file and create the pipeline with its first version."""
    namespace_authorize(actor=actor, namespace=namespace, action=Action.PIPELINE_UPLOAD)
    clean_name = _clean_name(name, field="name")
    clean_display = _clean_name(display_name, field="display_name")
    imported = _parse_upload(data=data, filename=filename)
    final_name = clean_name or clean_display or _default_name(imported, filename)
    return _create_pipeline_with_version(
        imported,
        namespace=namespace,
        actor=actor,
        name=final_name,
        display_name=clean_display or final_name,
        description=description or imported.description,
        code_source_url=code_source_url,
    )


def pipeline_create_from_spec(
    *,
    actor: Actor,
    namespace: Namespace,
    spec: dict[str, Any],
    platform_spec: dict[str, Any] | None = None,
    name: str | None = None,
    display_name: str | None = None,
    description: str = "",
    code_source_url: str = "",
) -> PipelineVersion:
    """Create a pipeline with its first version from a spec given as a dict (REST API)."""
    namespace_authorize(actor=actor, namespace=namespace, action=Action.PIPELINE_UPLOAD)
    imported = _parse_spec(spec=spec, platform_spec=platform_spec)
    final_name = (
        _clean_name(name, field="name")
        or _clean_name(display_name, field="display_name")
        or _default_name(imported, "pipeline")
    )
    return _create_pipeline_with_version(
        imported,
        namespace=namespace,
        actor=actor,
        name=final_name,
        display_name=_clean_name(display_name, field="display_name") or final_name,
        description=description or imported.description,
        code_source_url=code_source_url,
    )


def pipeline_create(
    *,
    actor: Actor,
    namespace: Namespace,
    name: str | None = None,
    display_name: str | None = None,
    description: str = "",
) -> Pipeline:
    """Create a pipeline with no version yet (KFP's CreatePipeline); versions are added
    later. Named by ``name``, else by ``display_name``; one of them is required."""
    namespace_authorize(actor=actor, namespace=namespace, action=Action.PIPELINE_EDIT)
    clean_display = _clean_name(display_name, field="display_name")
    final_name = _clean_name(name, field="name") or clean_display
    if not final_name:
        raise InvalidInput("a pipeline needs a name or a display_name", field="name")
    try:
        with transaction.atomic():
            if Pipeline.objects.filter(namespace=namespace, name=final_name).exists():
                raise Conflict(
                    f"a pipeline named {final_name!r} already exists in namespace {namespace.name!r}",
                    field="name",
                )
            return Pipeline.objects.create(
                namespace=namespace,
                name=final_name,
                display_name=clean_display or final_name,
                description=description,
                created_by=actor_user(actor),
            )
    except IntegrityError as exc:  # lost a race with a concurrent create of the same name
        raise Conflict(f"a pipeline named {final_name!r} already exists", field="name") from exc


def pipeline_update(*, actor: Actor, pipeline: Pipeline, display_name: str = "") -> Pipeline:
    """Change a pipeline's display name (KFP's UpdatePipeline; its name, the pipeline's
    identity in its namespace, does not change). An empty display_name changes nothing."""
    namespace_authorize(actor=actor, namespace=pipeline.namespace, action=Action.PIPELINE_EDIT)
    clean = _clean_name(display_name, field="display_name")
    if clean and clean != pipeline.display_name:
        Pipeline.objects.filter(pk=pipeline.pk).update(display_name=clean)
        pipeline.display_name = clean
    return pipeline


def pipeline_version_update(
    *, actor: Actor, version: PipelineVersion, display_name: str = ""
) -> PipelineVersion:
    """Change a version's display name (KFP's UpdatePipelineVersion). An empty
    display_name changes nothing."""
    namespace_authorize(actor=actor, namespace=version.pipeline.namespace, action=Action.PIPELINE_EDIT)
    clean = _clean_name(display_name, field="display_name")
    if clean and clean != version.display_name:
        PipelineVersion.objects.filter(pk=version.pk).update(display_name=clean)
        version.display_name = clean
    return version


def _next_version_name(pipeline: Pipeline) -> str:
    count = pipeline.versions.count()
    candidate = f"{pipeline.name}-v{count + 1}"
    while pipeline.versions.filter(name=candidate).exists():
        count += 1
        candidate = f"{pipeline.name}-v{count + 1}"
    return candidate


def pipeline_version_create(
    *,
    actor: Actor,
    pipeline: Pipeline,
    imported: ImportedPipeline,
    name: str | None = None,
    description: str = "",
    code_source_url: str = "",
) -> PipelineVersion:
    """Add an already-parsed definition as a new version of a pipeline."""
    namespace_authorize(actor=actor, namespace=pipeline.namespace, action=Action.PIPELINE_UPLOAD)
    clean = _clean_name(name, field="name")
    try:
        with transaction.atomic():
            final = clean or _next_version_name(pipeline)
            if pipeline.versions.filter(name=final).exists():
                raise Conflict(
                    f"pipeline {pipeline.name!r} already has a version named {final!r}", field="name"
                )
            return _version_from(
                imported,
                pipeline=pipeline,
                name=final,
                description=description,
                actor=actor,
                code_source_url=code_source_url,
            )
    except IntegrityError as exc:
        raise Conflict("a version with this name already exists", field="name") from exc


def pipeline_version_create_from_upload(
    *,
    actor: Actor,
    pipeline: Pipeline,
    data: bytes,
    filename: str,
    name: str | None = None,
    description: str = "",
    code_source_url: str = "",
) -> PipelineVersion:
    """Parse an uploaded file and add it as a new version of ``pipeline``."""
    # Checked before parsing too: a viewer's upload is refused without the parse's cost.
    namespace_authorize(actor=actor, namespace=pipeline.namespace, action=Action.PIPELINE_UPLOAD)
    _clean_name(name, field="name")
    imported = _parse_upload(data=data, filename=filename)
    return pipeline_version_create(
        actor=actor,
        pipeline=pipeline,
        imported=imported,
        name=name,
        description=description,
        code_source_url=code_source_url,
    )


def pipeline_version_create_from_spec(
    *,
    actor: Actor,
    pipeline: Pipeline,
    spec: dict[str, Any],
    platform_spec: dict[str, Any] | None = None,
    name: str | None = None,
    description: str = "",
    code_source_url: str = "",
) -> PipelineVersion:
    """Add a version from a spec given as a dict (REST API)."""
    namespace_authorize(actor=actor, namespace=pipeline.namespace, action=Action.PIPELINE_UPLOAD)
    imported = _parse_spec(spec=spec, platform_spec=platform_spec)
    return pipeline_version_create(
        actor=actor,
        pipeline=pipeline,
        imported=imported,
        name=name,
        description=description,
        code_source_url=code_source_url,
    )


def _refuse_if_referenced(versions: QuerySet[PipelineVersion], what: str) -> None:
    count = versions.aggregate(n=Count("runs"))["n"]
    if count:
        raise FailedPrecondition(
            f"{what} cannot be deleted: {count} run(s) reference it. Delete those runs first."
        )


@transaction.atomic
def pipeline_delete(*, actor: Actor, pipeline: Pipeline, cascade: bool = False) -> None:
    """Delete a pipeline. Like KFP, a pipeline that still has versions is only deleted
    with ``cascade``; either way it is refused while runs reference its versions."""
    namespace_authorize(actor=actor, namespace=pipeline.namespace, action=Action.PIPELINE_DELETE)
    versions = pipeline.versions.all()
    if versions.exists() and not cascade:
        raise FailedPrecondition(
            f"pipeline {pipeline.name!r} still has {versions.count()} version(s); delete them first "
            "or delete with cascade"
        )
    _refuse_if_referenced(versions, f"pipeline {pipeline.name!r}")
    if pipeline.recurring_runs.exists():
        raise FailedPrecondition(f"pipeline {pipeline.name!r} is used by recurring runs; delete them first")
    pipeline.delete()


@transaction.atomic
def pipeline_version_delete(*, actor: Actor, version: PipelineVersion) -> None:
    """Delete one version, refused while runs or recurring runs reference it."""
    namespace_authorize(actor=actor, namespace=version.pipeline.namespace, action=Action.PIPELINE_DELETE)
    _refuse_if_referenced(PipelineVersion.objects.filter(pk=version.pk), f"version {version.name!r}")
    if version.recurring_runs.exists():
        raise FailedPrecondition(f"version {version.name!r} is pinned by recurring runs; delete them first")
    version.delete()


def pipeline_delete_many(
    *, actor: Actor, pipelines: list[Pipeline], cascade: bool = False
) -> tuple[list[Pipeline], list[tuple[Pipeline, str]]]:
    """Delete several pipelines (the list page's bulk delete). Roles are all or nothing:
    the actor must be allowed to delete in every namespace involved before any is
    touched. Then each pipeline is deleted on its own, by :func:`pipeline_delete` (same
    rules: versions only with ``cascade``, never while runs or recurring runs use it), so
    one refused pipeline leaves the others deleted. Returns (deleted, [(refused, why)])."""
    for namespace in {p.namespace_id: p.namespace for p in pipelines}.values():
        namespace_authorize(actor=actor, namespace=namespace, action=Action.PIPELINE_DELETE)
    deleted: list[Pipeline] = []
    refused: list[tuple[Pipeline, str]] = []
    for pipeline in pipelines:
        try:
            pipeline_delete(actor=actor, pipeline=pipeline, cascade=cascade)
        except (FailedPrecondition, Conflict) as exc:
            refused.append((pipeline, exc.message))
        else:
            deleted.append(pipeline)
    return deleted, refused
