"""Artifact pages: the list (filter by type, link to the producer run and task), the
detail page (metadata, visualizations, preview, files) and downloads.

Content is served only from inside the artifact root (see
``selectors.artifact_confined_uri``). Every response carrying artifact bytes sets
``Content-Security-Policy: sandbox`` and ``X-Content-Type-Options: nosniff``, so an
HTML artifact opened directly runs no script with the site's origin."""

from __future__ import annotations

from typing import Any, TypeVar

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.artifacts import selectors
from apps.artifacts.lineage import lineage_graph, lineage_svg
from apps.artifacts.visualizations import (
    ContentUnavailable,
    artifact_visualizations,
    decode_text,
)
from apps.core.exceptions import NotFound
from apps.core.listing import PAGE_SIZES, BoundedPaginator, page_size
from apps.core.middleware import NamespacedRequest

PREVIEW_BYTES = 64 * 1024
VIEW_LIMIT = 8 * 1024 * 1024
SANDBOX_CSP = (
    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)
# An HTML artifact drawn inside a page (artifacts/_viz.html) runs in an
# <iframe sandbox="allow-scripts">: an opaque origin, so its script reaches neither
# the page, nor the site's cookies, nor the API with the user's session. Its own
# policy lets a self-contained or CDN-built report (plotly, bokeh...) draw itself,
# but it may not fetch, post forms, or be framed by another site.
FRAME_CSP = (
    "sandbox allow-scripts; default-src 'none'; "
    "script-src 'unsafe-inline' 'unsafe-eval' https:; style-src 'unsafe-inline' https:; "
    "img-src data: blob: https:; font-src data: https:; media-src data: blob:; "
    "connect-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


def _get(request: HttpRequest, artifact_id: Any) -> Any:
    try:
        return selectors.artifact_get(user=request.user, artifact_id=artifact_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


HttpResponseT = TypeVar("HttpResponseT", bound=HttpResponseBase)


def _harden(response: HttpResponseT) -> HttpResponseT:
    response["Content-Security-Policy"] = SANDBOX_CSP
    response["X-Content-Type-Options"] = "nosniff"
    response["X-Frame-Options"] = "DENY"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response


def _visualizations(artifact: Any) -> list[Any]:
    """What the artifact page draws for ``artifact`` (reads are bounded and confined)."""

    def read(limit: int) -> tuple[bytes, bool]:
        try:
            data, truncated, _ = selectors.artifact_read(artifact=artifact, limit=limit)
        except NotFound as exc:
            raise ContentUnavailable(exc.message) from exc
        return data, truncated

    return artifact_visualizations(
        schema_title=artifact.schema_title,
        name=artifact.name,
        uri=artifact.uri,
        metadata=artifact.metadata,
        read=read,
    )


@require_GET
def artifact_list(request: NamespacedRequest) -> HttpResponse:
    """Every artifact of the current namespace, filterable by type and name."""
    found = selectors.artifact_filter(
        user=request.user, namespace=request.namespace or None, params=request.GET, request=request
    )
    types = selectors.artifact_schema_titles(user=request.user, namespace=request.namespace or None)
    page = BoundedPaginator(found.qs, page_size(request)).get_page(request.GET.get("page"))
    return render(
        request,
        "artifacts/list.html",
        {
            "page": page,
            "types": types,
            "type": found.applied("type"),
            "query": found.query,
            "sort": found.sort,
            "page_sizes": PAGE_SIZES,
        },
    )


@require_GET
def artifact_detail(request: HttpRequest, artifact_id: str) -> HttpResponse:
    """One artifact: where it came from (and went: its lineage), its metadata,
    visualizations, preview, files."""
    artifact = _get(request, artifact_id)
    visualizations = _visualizations(artifact)
    preview: dict[str, Any] = {}
    files: list[Any] = []
    try:
        is_dir, files = selectors.artifact_entries(artifact=artifact)
        if not is_dir:
            data, truncated, size = selectors.artifact_read(artifact=artifact, limit=PREVIEW_BYTES)
            text = decode_text(data)
            preview = {"text": text, "truncated": truncated, "size": size, "binary": text is None}
        else:
            preview = {"directory": True}
    except NotFound as exc:
        preview = {"error": exc.message}
    lineage = selectors.artifact_lineage(artifact=artifact)
    return render(
        request,
        "artifacts/detail.html",
        {
            "artifact": artifact,
            "lineage": lineage,
            "lineage_svg": lineage_svg(lineage_graph(lineage)),
            "visualizations": visualizations,
            "preview": preview,
            "files": files,
        },
    )


@require_GET
def artifact_download(request: HttpRequest, artifact_id: str) -> FileResponse:
    """Download an artifact (or one file of a directory artifact, ``?path=``)."""
    artifact = _get(request, artifact_id)
    path = request.GET.get("path", "")
    try:
        handle, size, name = selectors.artifact_open(artifact=artifact, path=path)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    response = FileResponse(
        handle, as_attachment=True, filename=name, content_type="application/octet-stream"
    )
    response["Content-Length"] = str(size)
    return _harden(response)


@require_GET
def artifact_view(request: HttpRequest, artifact_id: str) -> HttpResponse:
    """Open an artifact in the browser: HTML as HTML inside a CSP sandbox (an opaque
    origin: no cookies, no same-origin requests, no scripts), anything else as text."""
    artifact = _get(request, artifact_id)
    path = request.GET.get("path", "")
    try:
        data, truncated, _ = selectors.artifact_read(artifact=artifact, limit=VIEW_LIMIT, path=path)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    is_html = artifact.schema_title == "system.HTML" or (path or artifact.uri).lower().endswith(
        (".html", ".htm")
    )
    content_type = "text/html; charset=utf-8" if is_html else "text/plain; charset=utf-8"
    if decode_text(data) is None:
        content_type = "application/octet-stream"
    response = HttpResponse(data, content_type=content_type)
    if truncated:
        response["X-Canal-Truncated"] = "1"
    return _harden(response)


@require_GET
def artifact_frame(request: HttpRequest, artifact_id: str, index: int) -> HttpResponse:
    """The document of an HTML visualization (the ``index``-th visualization of the
    artifact: a ``system.HTML`` page, or a v1 ``web-app`` output), for the sandboxed
    iframe of the artifact and run pages. Served by URL, not as the iframe's srcdoc,
    so that it runs under FRAME_CSP rather than the dashboard's stricter policy, which
    a srcdoc document would inherit."""
    artifact = _get(request, artifact_id)
    visualizations = _visualizations(artifact)
    if not 0 <= index < len(visualizations) or visualizations[index].kind != "html":
        raise Http404("no HTML visualization at that position")
    response = _harden(HttpResponse(visualizations[index].data, content_type="text/html; charset=utf-8"))
    response["Content-Security-Policy"] = FRAME_CSP
    response["X-Frame-Options"] = "SAMEORIGIN"  # framed by Canal's own pages only
    return response
