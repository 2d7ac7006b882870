"""The run page (DAG, details, spec, task list), its live-update endpoints, and the
node/task panel.

Live updates are polled: the run page asks ``status/`` every two seconds while the
run is active (a small JSON document: run state and per-node states); when the
drawing's signature changes it fetches the redrawn SVG, and the open task panel is
refetched when its node's state changes. Polling stops when the run is finished."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import yaml
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.artifacts import selectors as artifact_selectors
from apps.artifacts.visualizations import ContentUnavailable, artifact_visualizations
from apps.core.authz import namespace_permissions
from apps.core.choices import RuntimeState
from apps.core.exceptions import NotFound
from apps.core.graphviz_svg import STATE_FILL, STATE_GLYPH, STATE_STROKE
from apps.core.templatetags.canal import format_duration
from apps.core.timefmt import format_instant
from apps.runs import selectors
from apps.storage.log_errors import find_error_line
from apps.web.runs.views.common import (
    INSTANCE_PAGE,
    LOG_FALLBACK,
    TASK_PAGE,
    is_fragment_request,
    json_response,
    run_duration,
    run_or_404,
    run_parameter_rows,
)
from apps.web.runs.views.rerun import rerun_panel_context


def _node_details(overlay: Any) -> dict[str, dict[str, Any]]:
    return {
        node.id: {"label": node.label, "kind": node.kind, "component": node.component, "detail": node.detail}
        for node in overlay.graph.nodes
    }


def _task_table_context(request: HttpRequest, run: Any) -> dict[str, Any]:
    found = selectors.task_table_filter(run=run, params=request.GET, request=request)
    page = Paginator(found.qs, TASK_PAGE).get_page(request.GET.get("tpage"))
    return {"task_page": page, "tsort": found.sort, "tstate": found.applied("tstate"), "tq": found.query}


@require_GET
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    """The run page: Graph, Details, Pipeline spec and Tasks tabs."""
    return render_run_page(request, run_or_404(request, run_id))


def render_run_page(
    request: HttpRequest, run: Any, *, task_panel_for: Any = None, rerun: Any = None, status: int = 200
) -> HttpResponse:
    """The run page; ``task_panel_for`` opens that task's panel (with ``rerun`` as its
    re-run block: a form shown again with its errors) instead of the query's."""
    overlay = selectors.run_graph(run=run)
    drawing = selectors.run_graph_drawing(run=run, overlay=overlay) if overlay.graph.nodes else None
    panel = None
    if task_panel_for is not None:
        panel = {**_task_panel(run, task_panel_for, request), "rerun": rerun}
    elif request.GET.get("task") or request.GET.get("node"):
        panel = _panel_context(request, run, overlay)
    context = {
        "run": run,
        "overlay": overlay,
        "drawing": drawing,
        "node_details": _node_details(overlay),
        "parameters": run_parameter_rows(run),
        "duration": run_duration(run),
        "pipeline_root_note": selectors.run_pipeline_root_note(run=run),
        "sandbox_warnings": selectors.run_sandbox_warnings(run=run),
        "spec_yaml": yaml.safe_dump(run.pipeline_spec, sort_keys=False, allow_unicode=True, width=100),
        "is_active": run.state not in RuntimeState.terminal(),
        "has_loops": any(node.kind == "loop" for node in overlay.graph.nodes),
        "has_artifacts": any(node.kind == "artifact" for node in overlay.graph.nodes),
        "dag_legend": [
            (state, STATE_GLYPH[state])
            for state in ("SUCCEEDED", "CACHED", "RUNNING", "PENDING", "FAILED", "CANCELED", "SKIPPED")
        ],
        "panel": panel,
        "failure": _failure(run),
        "can_terminate": run.state in RuntimeState.active() and run.state != RuntimeState.CANCELING,
        "can_retry": run.state in (RuntimeState.FAILED, RuntimeState.CANCELED),
        "can_delete": run.state not in RuntimeState.active(),
        "can": namespace_permissions(actor=request.user, namespace=run.namespace),
        "state_colors_fill": _state_fill(),
        **_rerun_links(request, run),
        **_task_table_context(request, run),
    }
    return render(request, "runs/detail.html", context, status=status)


def _rerun_links(request: HttpRequest, run: Any) -> dict[str, Any]:
    """The origin of a step re-run (if the user may see it) and the re-runs made from this run."""
    origin = None
    if run.rerun_of_id:
        try:
            origin = selectors.run_get(user=request.user, run_id=run.rerun_of_id, with_spec=False)
        except NotFound:
            origin = None
    return {"rerun_origin": origin, "reruns": selectors.run_reruns(run=run)}


def _state_fill() -> dict[str, Any]:

    return {"fill": STATE_FILL, "stroke": STATE_STROKE}


@require_GET
def run_status(request: HttpRequest, run_id: str) -> HttpResponse:
    """What the run page polls: run state, duration and per-node states and badges."""
    run = run_or_404(request, run_id, with_spec=False)
    overlay = selectors.run_graph(run=run)
    duration = run_duration(run)

    payload = {
        "state": run.state,
        "terminal": run.state in RuntimeState.terminal(),
        "error": run.error,
        "duration": format_duration(duration) if duration is not None else "—",
        "started": format_instant(run.started_at),
        "signature": overlay.signature,
        "nodes": overlay.states,
        "badges": overlay.badges,
        "task_count": overlay.task_count,
        "failed_task": _failed_task_json(run),
    }
    if request.GET.get("task"):  # the task whose panel is open: refresh it when its state changes
        try:
            payload["task_state"] = selectors.task_get(run=run, task_id=request.GET["task"]).state
        except NotFound:
            payload["task_state"] = None
    return json_response(payload)


FAILED_STEPS_SHOWN = 20  # the banner counts the other failed steps up to this many


def _failure(run: Any) -> dict[str, Any] | None:
    """The run's first failed step (what its banner names) and how many others failed."""
    failed = selectors.run_failed_steps(run=run, limit=FAILED_STEPS_SHOWN + 1)
    if not failed:
        return None
    others = len(failed) - 1
    return {
        "task": failed[0],
        "others": min(others, FAILED_STEPS_SHOWN),
        "more": others > FAILED_STEPS_SHOWN,
    }


def _failed_task_json(run: Any) -> dict[str, Any] | None:
    """The first failed step, for the banner the run page redraws when a run fails live."""
    failure = _failure(run)
    if failure is None:
        return None
    task = failure["task"]
    return {
        "id": str(task.pk),
        "name": task.display_name or task.name,
        "key": task.key,
        "error": task.error,
        "others": failure["others"],
        "more": failure["more"],
        "url": f"{reverse('runs:detail', kwargs={'run_id': run.pk})}?task={task.pk}#graph",
    }


@require_GET
def run_graph_svg(request: HttpRequest, run_id: str) -> HttpResponse:
    """The current drawing of the run's DAG (an SVG document) and its element→node map."""
    run = run_or_404(request, run_id, with_spec=False)
    overlay = selectors.run_graph(run=run)
    drawing = selectors.run_graph_drawing(run=run, overlay=overlay) if overlay.graph.nodes else None
    if drawing is None:
        raise Http404("this DAG cannot be drawn")
    return json_response(
        {
            "svg": drawing.svg,
            "element_ids": drawing.element_ids,
            "signature": overlay.signature,
            "states": overlay.states,
        }
    )


@require_GET
def run_tasks_fragment(request: HttpRequest, run_id: str) -> HttpResponse:
    """The task list table alone (the run page refreshes it while the run is active)."""
    run = run_or_404(request, run_id, with_spec=False)
    return render(request, "runs/_tasks_table.html", {"run": run, **_task_table_context(request, run)})


def _io_parameters(io: dict[str, Any] | None) -> list[tuple[str, Any]]:
    return sorted(((io or {}).get("parameters") or {}).items())


def _io_artifacts(io: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for name, refs in sorted(((io or {}).get("artifacts") or {}).items()):
        for ref in refs or []:
            if isinstance(ref, dict):
                out.append(
                    {
                        "name": name,
                        "uri": ref.get("uri", ""),
                        "type": ref.get("schema_title", ""),
                        "id": ref.get("id") or "",
                    }
                )
    return out


def _reader(artifact: Any) -> Any:
    def read(limit: int) -> tuple[bytes, bool]:
        try:
            data, truncated, _ = artifact_selectors.artifact_read(artifact=artifact, limit=limit)
        except NotFound as exc:
            raise ContentUnavailable(exc.message) from exc
        return data, truncated

    return read


def visualizations_for(artifact: Any) -> list[Any]:
    """The visualizations of one artifact row."""
    return artifact_visualizations(
        schema_title=artifact.schema_title,
        name=artifact.name,
        uri=artifact.uri,
        metadata=artifact.metadata,
        read=_reader(artifact),
    )


def _task_panel(run: Any, task: Any, request: HttpRequest) -> dict[str, Any]:
    attempts = list(selectors.task_attempts(task=task))
    produced = list(artifact_selectors.artifact_list_for_task(task=task))
    outputs = [{"artifact": a, "visualizations": visualizations_for(a)} for a in produced]
    has_log = bool(task.log_path) or any(a.log_path for a in attempts)
    log_text = ""
    if has_log:
        try:
            size = selectors.task_log_read(task=task, offset=0, limit=0).size
            tail = selectors.task_log_read(task=task, offset=max(0, size - LOG_FALLBACK), limit=LOG_FALLBACK)
            log_text = tail.data.decode("utf-8", errors="replace")
        except NotFound as exc:
            log_text = exc.message
    end = task.finished_at or (timezone.now() if task.started_at and not task.is_terminal else None)
    return {
        "type": "task",
        "task": task,
        "attempts": attempts,
        "inputs_params": _io_parameters(task.inputs),
        "inputs_artifacts": _io_artifacts(task.inputs),
        "outputs_params": _io_parameters(task.outputs),
        "outputs_artifacts": _io_artifacts(task.outputs),
        "produced": outputs,
        "has_visualizations": any(item["visualizations"] for item in outputs),
        "log_text": log_text,
        "has_log": has_log,
        "failure_line": find_error_line(log_text) if task.state == RuntimeState.FAILED else "",
        "duration": (end - task.started_at) if task.started_at and end else None,
        "is_active": not task.is_terminal,
        "log_attempt": task.attempt or (attempts[-1].number if attempts else 0),
        "why": selectors.task_why(run=run, task=task),
        "rerun": rerun_panel_context(request, run, task),
    }


def _key_order(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """Order task keys with iteration indexes compared as numbers (#2 before #10)."""
    parts: list[Any] = []
    for segment in row["key"].split("/"):
        name, _, index = segment.partition("#")
        parts.append((name, int(index) if index.isdigit() else -1))
    return tuple(parts)


def _paged(request: HttpRequest, items: list[Any], size: int = INSTANCE_PAGE) -> Any:
    return Paginator(items, size).get_page(request.GET.get("page"))


def _panel_context(request: HttpRequest, run: Any, overlay: Any) -> dict[str, Any]:
    """The panel for ``?task=<id or key>`` or ``?node=<graph node id>`` (paged lists
    for loops and for nodes that ran many times; ``focus`` expands one iteration)."""
    task_ref = request.GET.get("task")
    if task_ref:
        try:
            task = selectors.task_get_detail(run=run, task_id=task_ref)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        if task.kind in ("ITERATION", "DAG", "LOOP", "ROOT"):
            return _group_panel(request, run, task)
        return _task_panel(run, task, request)
    node_id = request.GET.get("node", "")
    node = overlay.graph.node(node_id)
    if node is None:
        raise Http404("no such node in this run's graph")
    base = {
        "node": node,
        "node_state": overlay.states.get(node_id, ""),
        "badge": overlay.badges.get(node_id, ""),
    }
    instances = overlay.instances(node_id)
    if node.kind == "artifact":
        # An artifact is shown by the step that wrote it: its outputs list the artifact,
        # with its page and download links.
        instances = overlay.instances(str(node.detail.get("producer", "")))
    if node.kind == "loop":
        wanted = request.GET.get("state", "")
        listed = [r for r in instances if not wanted or r["state"] == wanted]
        return {
            **base,
            "type": "loop",
            "counts": sorted(overlay.counts.get(node_id, {}).items()),
            "page": _paged(request, sorted(listed, key=_key_order)),
            "state_filter": wanted,
            "query": urlencode({"node": node_id}),
            "loops": overlay.loops(node_id),
        }
    if len(instances) == 1:
        try:
            task = selectors.task_get_detail(run=run, task_id=instances[0]["id"])
        except NotFound as exc:
            raise Http404(exc.message) from exc
        if task.kind in ("DAG", "ROOT"):
            return {**_group_panel(request, run, task), **base}
        return {**_task_panel(run, task, request), **base}
    if instances:
        wanted = request.GET.get("state", "")
        listed = [r for r in instances if not wanted or r["state"] == wanted]
        return {
            **base,
            "type": "instances",
            "counts": sorted(overlay.counts.get(node_id, {}).items()),
            "page": _paged(request, sorted(listed, key=_key_order)),
            "state_filter": wanted,
            "query": urlencode({"node": node_id}),
        }
    return {**base, "type": "static", "detail": node.detail}


def _group_panel(request: HttpRequest, run: Any, task: Any) -> dict[str, Any]:
    """An iteration or sub-DAG: its own state and the tasks inside it, paged."""
    children = selectors.task_children_rows(run=run, key_prefix=task.key)
    children.sort(key=_key_order)
    return {
        "type": "group",
        "task": task,
        "why": selectors.task_why(run=run, task=task),
        "page": _paged(request, children),
        "query": urlencode({"task": str(task.pk)}),
        "state_filter": "",
        "duration": (task.finished_at - task.started_at) if task.started_at and task.finished_at else None,
    }


@require_GET
def run_panel(request: HttpRequest, run_id: str) -> HttpResponse:
    """The panel fragment for a node or task (the run page loads it on click)."""
    run = run_or_404(request, run_id)
    overlay = selectors.run_graph(run=run)
    panel = _panel_context(request, run, overlay)
    if not is_fragment_request(request):
        query = urlencode({k: v for k, v in request.GET.items()})
        return redirect(f"{reverse('runs:detail', kwargs={'run_id': run.pk})}?{query}#graph")
    response = render(request, "runs/_panel.html", {"run": run, "panel": panel})
    response["Cache-Control"] = "no-store"
    return response
