"""Read-side queries for pipelines and versions. Every read is scoped to the
namespaces the user may see; an object outside them is reported as not found."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.core.cache import cache
from django.db.models import OuterRef, QuerySet, Subquery

from apps.core.exceptions import NotFound
from apps.core.graphviz_svg import DRAWING_VERSION, GraphRenderError, RenderedGraph, render_graph_svg
from apps.core.models import Namespace
from apps.core.selectors import namespace_list_for_user
from apps.core.specs import graph_for_spec
from apps.engine.graph import Graph
from apps.engine.runtime_params import tidy_numbers, type_label
from apps.pipelines.filters import PipelineFilterSet
from apps.pipelines.models import Pipeline, PipelineVersion

logger = logging.getLogger(__name__)


def _as_uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"{what} {value!r} not found") from None


def pipeline_list(*, user: Any, namespace: Namespace | None = None) -> QuerySet[Pipeline]:
    """Pipelines visible to the user (in one namespace if given), each annotated
    with its latest version's id and name, in one query."""
    latest = PipelineVersion.objects.filter(pipeline=OuterRef("pk")).order_by("-created_at")
    qs = Pipeline.objects.filter(namespace__in=namespace_list_for_user(user=user))
    if namespace is not None:
        qs = qs.filter(namespace=namespace)
    return qs.select_related("namespace").annotate(
        latest_version_id=Subquery(latest.values("id")[:1]),
        latest_version_name=Subquery(latest.values("display_name")[:1]),
        latest_version_created_at=Subquery(latest.values("created_at")[:1]),
    )


def pipeline_filter(
    *, user: Any, namespace: Namespace | None, params: Any, request: Any = None
) -> PipelineFilterSet:
    """The pipelines list page's rows: pipeline_list filtered and sorted by the request
    parameters ``params`` (``q``, ``sort``); ``.qs`` is the queryset."""
    return PipelineFilterSet(params, pipeline_list(user=user, namespace=namespace), request=request)


def pipeline_list_by_ids(*, user: Any, ids: list[uuid.UUID]) -> QuerySet[Pipeline]:
    """The pipelines with these ids that the user may see (others are left out)."""
    return pipeline_list(user=user).filter(pk__in=ids)


def pipeline_choices(*, user: Any, namespace: Namespace | None, limit: int = 500) -> list[Pipeline]:
    """At most ``limit`` pipelines of the namespace, by name (a form's choices)."""
    return list(pipeline_list(user=user, namespace=namespace).order_by("display_name")[:limit])


def pipeline_get(*, user: Any, pipeline_id: Any) -> Pipeline:
    """One pipeline the user may see, or NotFound."""
    pid = _as_uuid(pipeline_id, "pipeline")
    try:
        return Pipeline.objects.select_related("namespace").get(
            pk=pid, namespace__in=namespace_list_for_user(user=user)
        )
    except Pipeline.DoesNotExist:
        raise NotFound(f"pipeline {pipeline_id} not found") from None


def pipeline_get_by_name(*, user: Any, namespace: Namespace, name: str) -> Pipeline | None:
    """The pipeline with this name in the namespace, if any."""
    return pipeline_list(user=user, namespace=namespace).filter(name=name).first()


def pipeline_version_list(*, pipeline: Pipeline) -> QuerySet[PipelineVersion]:
    """A pipeline's versions, newest first, without their (large) source and spec."""
    return pipeline.versions.defer("source", "pipeline_spec", "platform_spec").order_by("-created_at")


def pipeline_version_get(*, user: Any, version_id: Any, pipeline_id: Any | None = None) -> PipelineVersion:
    """One version the user may see (optionally of a given pipeline), or NotFound."""
    vid = _as_uuid(version_id, "pipeline version")
    qs = PipelineVersion.objects.select_related("pipeline", "pipeline__namespace").filter(
        pipeline__namespace__in=namespace_list_for_user(user=user)
    )
    if pipeline_id is not None:
        qs = qs.filter(pipeline_id=_as_uuid(pipeline_id, "pipeline"))
    try:
        return qs.get(pk=vid)
    except PipelineVersion.DoesNotExist:
        raise NotFound(f"pipeline version {version_id} not found") from None


def pipeline_version_latest(*, pipeline: Pipeline) -> PipelineVersion | None:
    """The newest version of a pipeline."""
    return pipeline.versions.order_by("-created_at").first()


def pipeline_version_graph(*, version: PipelineVersion) -> Graph:
    """The version's DAG as a format-neutral graph (KFP IR or Argo)."""
    return graph_for_spec(version.format, version.pipeline_spec, version.platform_spec)


def pipeline_version_drawing(*, version: PipelineVersion) -> RenderedGraph | None:
    """The version's static DAG as inline SVG, cached by content hash (a version's
    text never changes, so neither does its drawing). None if it can't be drawn."""
    key = f"canal:dag-svg:{DRAWING_VERSION}:{version.format}:{version.content_hash}"
    cached = cache.get(key)
    if cached is not None:
        return RenderedGraph(**cached)
    try:
        drawing = render_graph_svg(pipeline_version_graph(version=version))
    except (GraphRenderError, ValueError) as exc:
        logger.warning("cannot draw pipeline version %s: %s", version.pk, exc)
        return None
    cache.set(key, {"svg": drawing.svg, "element_ids": drawing.element_ids}, timeout=24 * 3600)
    return drawing


def pipeline_version_node_details(*, version: PipelineVersion) -> dict[str, dict[str, Any]]:
    """Per node: label, kind and details (image, command, inputs, outputs) for the node panel."""
    graph = pipeline_version_graph(version=version)
    return {
        node.id: {
            "label": node.label,
            "kind": node.kind,
            "component": node.component,
            "detail": readable_node_detail(node.detail),
        }
        for node in graph.nodes
    }


# The engine's node detail keys, in the order and with the labels the panel shows them.
_DETAIL_LABELS = {
    "executor": "Executor",
    "image": "Image",
    "command": "Command",
    "inputs": "Inputs",
    "outputs": "Outputs",
    "condition": "Condition",
    "trigger": "Trigger",
    "iterator": "Iterates over",
    "parallelism": "Parallelism",
    "retry": "Retries",
    "caching": "Caching",
    "env": "Environment",
    "resources": "Resources",
    "artifact_uri": "Artifact URI",
    "artifact_type": "Artifact type",
}
_SKIPPED = {"task", "component", "args"}  # shown elsewhere: the title, the component row, with the command


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(tidy_numbers(value), ensure_ascii=False, sort_keys=True, default=str)


def _io_lines(section: Any) -> list[str]:
    """``{"parameters": {...}, "artifacts": {...}}`` as ``name: type ← source`` lines."""
    lines: list[str] = []
    if not isinstance(section, dict):
        return [_scalar_text(section)]
    for kind in ("parameters", "artifacts"):
        for name, value in (section.get(kind) or {}).items():
            if isinstance(value, dict):
                ptype, source = value.get("type", ""), value.get("from", "")
            else:
                ptype, source = value, ""
            shown = type_label(ptype) if kind == "parameters" else str(ptype or "")
            line = f"{name}: {shown}" if shown else str(name)
            lines.append(f"{line} ← {source}" if source else line)
    return lines


def _retry_text(retry: Any) -> str:
    if not isinstance(retry, dict):
        return _scalar_text(retry)
    text = f"up to {retry.get('max_retry_count', 0)} times"
    extras = []
    if retry.get("backoff_duration"):
        extras.append(f"backoff {retry['backoff_duration']}")
    if retry.get("backoff_factor"):
        extras.append(f"factor {_scalar_text(retry['backoff_factor'])}")
    if retry.get("backoff_max_duration"):
        extras.append(f"at most {retry['backoff_max_duration']}")
    return f"{text} ({', '.join(extras)})" if extras else text


def readable_node_detail(detail: dict[str, Any]) -> dict[str, str | list[str]]:
    """A graph node's detail as the pipeline preview's panel shows it: labelled rows whose
    values are text (a multi-line text is shown as code) or lists of lines, never raw JSON.
    Parameter types use the one vocabulary of every page (``integer``, not ``NUMBER_INTEGER``)."""
    rows: dict[str, str | list[str]] = {}
    ordered = [k for k in _DETAIL_LABELS if k in detail] + [
        k for k in detail if k not in _DETAIL_LABELS and k not in _SKIPPED
    ]
    for key in ordered:
        value = detail[key]
        label = _DETAIL_LABELS.get(key, key.replace("_", " ").capitalize())
        if key == "command":
            lines = [str(a) for a in [*(value or []), *(detail.get("args") or [])]]
            if lines:
                rows[label] = "\n".join(lines)
        elif key in ("inputs", "outputs"):
            rows[label] = _io_lines(value)
        elif key == "retry":
            rows[label] = _retry_text(value)
        elif key == "caching":
            rows[label] = "on" if value else "off"
        elif isinstance(value, dict):
            rows[label] = [f"{k}: {_scalar_text(v)}" for k, v in value.items()]
        elif isinstance(value, list):
            rows[label] = [_scalar_text(v) for v in value]
        else:
            rows[label] = _scalar_text(value)
    return rows
