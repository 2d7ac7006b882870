"""Pipeline pages: list, detail (versions, spec, DAG), upload, upload version, delete."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.authz import Action, namespace_permissions
from apps.core.exceptions import NotFound, ServiceError
from apps.core.listing import PAGE_SIZES, BoundedPaginator, page_size
from apps.core.middleware import NamespacedRequest
from apps.core.views import require_role
from apps.pipelines import selectors, services
from apps.pipelines.forms import PipelineUploadForm, PipelineVersionUploadForm

MAX_BULK = 200  # pipelines one bulk delete may name (a page holds at most 100)


def pipeline_list(request: NamespacedRequest) -> HttpResponse:
    """Pipelines in the current namespace, filterable by name, sortable, paged."""
    found = selectors.pipeline_filter(
        user=request.user, namespace=request.namespace or None, params=request.GET, request=request
    )
    page = BoundedPaginator(found.qs, page_size(request)).get_page(request.GET.get("page"))
    return render(
        request,
        "pipelines/list.html",
        {"page": page, "query": found.query, "sort": found.sort, "page_sizes": PAGE_SIZES},
    )


def pipeline_detail(request: HttpRequest, pipeline_id: str) -> HttpResponse:
    """One pipeline: version picker, DAG, spec."""
    try:
        pipeline = selectors.pipeline_get(user=request.user, pipeline_id=pipeline_id)
        versions = list(selectors.pipeline_version_list(pipeline=pipeline))
        wanted = request.GET.get("version")
        version = (
            selectors.pipeline_version_get(user=request.user, version_id=wanted, pipeline_id=pipeline.id)
            if wanted
            else selectors.pipeline_version_latest(pipeline=pipeline)
        )
    except NotFound as exc:
        raise Http404(exc.message) from exc
    drawing = selectors.pipeline_version_drawing(version=version) if version else None
    node_details = selectors.pipeline_version_node_details(version=version) if version and drawing else {}
    run_create_url = f"{reverse('runs:new')}?{urlencode({'version': version.pk})}" if version else ""
    return render(
        request,
        "pipelines/detail.html",
        {
            "pipeline": pipeline,
            "versions": versions,
            "version": version,
            "drawing": drawing,
            "node_details": node_details,
            "run_create_url": run_create_url,
            "can": namespace_permissions(actor=request.user, namespace=pipeline.namespace),
        },
    )


@require_http_methods(["GET", "POST"])
def pipeline_upload(request: NamespacedRequest) -> HttpResponse:
    """Upload a new pipeline. A refused file re-renders the form with the reason."""
    require_role(request, request.namespace, Action.PIPELINE_UPLOAD)
    form = PipelineUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            version = services.pipeline_create_from_upload(
                actor=request.user,
                namespace=request.namespace,
                data=form.cleaned_data["data"],
                filename=form.cleaned_data["file"].name,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
            )
        except ServiceError as exc:
            form.add_error("file" if exc.field == "uploadfile" else exc.field, exc.message)
        else:
            messages.success(request, f"Uploaded pipeline {version.pipeline.display_name}.")
            return redirect("pipelines:detail", pipeline_id=version.pipeline_id)
    status = 400 if request.method == "POST" else 200
    return render(request, "pipelines/upload.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
def pipeline_version_upload(request: HttpRequest, pipeline_id: str) -> HttpResponse:
    """Upload a new version of an existing pipeline."""
    try:
        pipeline = selectors.pipeline_get(user=request.user, pipeline_id=pipeline_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    require_role(request, pipeline.namespace, Action.PIPELINE_UPLOAD)
    form = PipelineVersionUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            version = services.pipeline_version_create_from_upload(
                actor=request.user,
                pipeline=pipeline,
                data=form.cleaned_data["data"],
                filename=form.cleaned_data["file"].name,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
            )
        except ServiceError as exc:
            form.add_error("file" if exc.field == "uploadfile" else exc.field, exc.message)
        else:
            messages.success(request, f"Uploaded version {version.display_name}.")
            return redirect(f"{pipeline.get_absolute_url()}?version={version.id}")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "pipelines/upload_version.html", {"form": form, "pipeline": pipeline}, status=status
    )


@require_POST
def pipeline_delete(request: HttpRequest, pipeline_id: str) -> HttpResponse:
    """Delete a pipeline and its versions; refused while runs reference it."""
    try:
        pipeline = selectors.pipeline_get(user=request.user, pipeline_id=pipeline_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    require_role(request, pipeline.namespace, Action.PIPELINE_DELETE)
    try:
        services.pipeline_delete(actor=request.user, pipeline=pipeline, cascade=True)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("pipelines:detail", pipeline_id=pipeline_id)
    messages.success(request, f"Deleted pipeline {pipeline.display_name}.")
    return redirect("pipelines:list")


def _selected_pipeline_ids(request: HttpRequest) -> list[uuid.UUID]:
    ids = []
    for value in request.POST.getlist("pipeline")[:MAX_BULK]:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue  # not an id: nothing to select (the page only offers real ones)
    return ids


@require_POST
def pipeline_bulk_delete(request: HttpRequest) -> HttpResponse:
    """Delete the pipelines selected on the list page. Like KFP, a pipeline that has
    versions is deleted only with "and their versions" (cascade) ticked; each refused
    pipeline is named with its reason, the others are deleted."""
    pipelines = list(selectors.pipeline_list_by_ids(user=request.user, ids=_selected_pipeline_ids(request)))
    if not pipelines:
        messages.error(request, "Select at least one pipeline to delete.")
        return redirect("pipelines:list")
    # All or nothing on roles: a 403 before any pipeline is touched.
    for namespace in dict.fromkeys(p.namespace for p in pipelines):
        require_role(request, namespace, Action.PIPELINE_DELETE)
    deleted, refused = services.pipeline_delete_many(
        actor=request.user, pipelines=pipelines, cascade=request.POST.get("cascade") == "on"
    )
    if deleted:
        names = ", ".join(p.display_name for p in deleted[:5]) + (" …" if len(deleted) > 5 else "")
        messages.success(
            request, f"Deleted {len(deleted)} pipeline{'s' if len(deleted) != 1 else ''}: {names}."
        )
    for pipeline, reason in refused:
        messages.error(request, f"{pipeline.display_name} was not deleted: {reason}.")
    return redirect("pipelines:list")


@require_POST
def pipeline_version_delete(request: HttpRequest, pipeline_id: str, pipeline_version_id: str) -> HttpResponse:
    """Delete one version of a pipeline; refused while runs or recurring runs use it."""
    try:
        version = selectors.pipeline_version_get(
            user=request.user, version_id=pipeline_version_id, pipeline_id=pipeline_id
        )
    except NotFound as exc:
        raise Http404(exc.message) from exc
    require_role(request, version.pipeline.namespace, Action.PIPELINE_DELETE)
    detail = reverse("pipelines:detail", kwargs={"pipeline_id": version.pipeline_id})
    try:
        services.pipeline_version_delete(actor=request.user, version=version)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect(f"{detail}?{urlencode({'version': version.pk})}")
    messages.success(
        request, f"Deleted version {version.display_name} of pipeline {version.pipeline.display_name}."
    )
    return redirect(detail)
