"""Run pages: the runs list (with bulk actions and metric columns), the new-run form,
the run page (DAG, details, spec, task list), its live-update endpoints, the task
panel with logs and visualizations, run actions, and run comparison.

Live updates are polled: the run page asks ``status/`` every two seconds while the
run is active (a small JSON document: run state and per-node states); when the
drawing's signature changes it fetches the redrawn SVG, and the open task panel is
refetched when its node's state changes. Polling stops when the run is finished.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from typing import Any
from urllib.parse import urlencode

import yaml
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.artifacts import selectors as artifact_selectors
from apps.artifacts.visualizations import ContentUnavailable, artifact_visualizations
from apps.core.choices import RuntimeState, StorageState
from apps.core.exceptions import NotFound, ServiceError
from apps.core.listing import apply_sort
from apps.engine.runtime_params import root_parameters
from apps.experiments import selectors as experiment_selectors
from apps.pipelines import selectors as pipeline_selectors
from apps.runs import selectors, services
from apps.runs.forms import RunForm

PAGE_SIZES = (10, 20, 50, 100)
RUN_SORTS = {"name": "display_name", "created": "created_at", "state": "state", "duration": "duration"}
TASK_SORTS = {
    "order": "created_at",  # the order the engine planned them: loop iterations by index
    "name": "key",
    "state": "state",
    "started": "started_at",
    "duration": "duration",
    "kind": "kind",
}
TASK_PAGE = 50
INSTANCE_PAGE = 50
LOG_CHUNK = 256 * 1024
LOG_FALLBACK = 64 * 1024  # the log tail rendered into the page for browsers without JavaScript
MAX_COMPARE = 10
MAX_METRIC_COLUMNS = 6
DEFAULT_METRIC_COLUMNS = 3

# Recurring runs (issue 6) provide the trigger form and service; the new-run form offers
# "Recurring" once they exist. Found by module spec so that a real error inside them
# is not hidden.
if importlib.util.find_spec("apps.schedules.forms") and importlib.util.find_spec("apps.schedules.services"):
    try:
        from apps.schedules.forms import TriggerForm  # type: ignore[attr-defined]
        from apps.schedules.services import recurring_run_create  # type: ignore[attr-defined]
    except ImportError:  # the modules exist but do not have these names yet
        TriggerForm = None
        recurring_run_create = None
else:  # pragma: no cover - depends on the other issue's progress
    TriggerForm = None
    recurring_run_create = None
TRIGGER_ERROR_FIELDS = {"interval_second", "trigger_type", "cron", "start_time", "end_time", "timezone"}


# --- helpers ------------------------------------------------------------------------------

# JSON for the page's scripts, with <, > and & escaped (as json_script does): even if a
# browser were tricked into rendering it as HTML, no markup from the data could appear.
_JSON_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def _json(payload: dict[str, Any]) -> HttpResponse:
    body = json.dumps(payload, ensure_ascii=False).translate(_JSON_ESCAPES)
    response = HttpResponse(body, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


def _page_size(request: HttpRequest, default: int = 20) -> int:
    try:
        size = int(request.GET.get("page_size", default))
    except ValueError:
        return default
    return size if size in PAGE_SIZES else default


def _get_run(request: HttpRequest, run_id: Any, *, with_spec: bool = True) -> Any:
    try:
        return selectors.run_get(user=request.user, run_id=run_id, with_spec=with_spec)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


def _is_fragment(request: HttpRequest) -> bool:
    return request.headers.get("X-Canal-Fragment") == "1"


def runs_table_context(
    request: HttpRequest, qs: Any, *, archived: bool, extra_params: dict[str, str] | None = None
) -> dict[str, Any]:
    """Filter, sort, page and decorate a runs queryset (shared with the experiment page).
    Constant queries: the page, its count, and one query for all metric columns."""
    qs = qs.filter(storage_state=StorageState.ARCHIVED if archived else StorageState.AVAILABLE)
    query = request.GET.get("q", "").strip()
    if query:
        qs = qs.filter(display_name__icontains=query)
    state = request.GET.get("state", "")
    if state in RuntimeState.values:
        qs = qs.filter(state=state)
    else:
        state = ""
    qs, sort = apply_sort(qs, request.GET.get("sort", "-created"), RUN_SORTS, default="-created")
    page = Paginator(qs, _page_size(request)).get_page(request.GET.get("page"))
    runs = list(page.object_list)
    metrics = artifact_selectors.run_metric_values(run_ids=[r.pk for r in runs])
    available = sorted({name for values in metrics.values() for name in values})
    chosen = [m for m in request.GET.getlist("metric") if m in available][:MAX_METRIC_COLUMNS]
    if not chosen and "metric" not in request.GET:
        chosen = available[:DEFAULT_METRIC_COLUMNS]
    now = timezone.now()
    rows = []
    for run in runs:
        values = metrics.get(run.pk, {})
        start = run.started_at
        end = run.finished_at or (now if run.state in RuntimeState.active() and start else None)
        rows.append(
            {
                "run": run,
                "duration": (end - start) if start and end else None,
                "metrics": [values.get(m) for m in chosen],
            }
        )
    return {
        "page": page,
        "rows": rows,
        "query": query,
        "state": state,
        "sort": sort,
        "archived": archived,
        "page_sizes": PAGE_SIZES,
        "state_choices": RuntimeState.choices[1:],
        "metric_columns": chosen,
        "metrics_available": available,
        "extra_params": extra_params or {},
    }


# --- list and bulk actions ---------------------------------------------------------------------


@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    """Active or archived runs of the current namespace."""
    archived = request.GET.get("view") == "archived"
    qs = selectors.run_list_with_duration(user=request.user, namespace=request.namespace)
    context = runs_table_context(request, qs, archived=archived)
    return render(request, "runs/list.html", context)


BULK_ACTIONS = {"archive", "restore", "delete"}


@require_POST
def run_bulk(request: HttpRequest) -> HttpResponse:
    """Archive, restore or delete the selected runs; each one reports its own refusal."""
    action = request.POST.get("action", "")
    target = _safe_next(request, reverse("runs:list"))
    if action not in BULK_ACTIONS:
        messages.error(request, "Choose archive, restore or delete.")
        return HttpResponseRedirect(target)
    ids = []
    for value in request.POST.getlist("run"):
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    runs = list(selectors.run_list(user=request.user).filter(pk__in=ids))
    if not runs:
        messages.error(request, "Select at least one run.")
        return HttpResponseRedirect(target)
    done, refused = 0, []
    for run in runs:
        try:
            if action == "archive":
                services.run_archive(run=run)
            elif action == "restore":
                services.run_unarchive(run=run)
            else:
                services.run_delete(run=run)
            done += 1
        except ServiceError as exc:
            refused.append(f"{run.display_name}: {exc.message}")
    verb = {"archive": "Archived", "restore": "Restored", "delete": "Deleted"}[action]
    if done:
        messages.success(request, f"{verb} {done} run{'s' if done != 1 else ''}.")
    for reason in refused:
        messages.error(request, reason)
    return HttpResponseRedirect(target)


# --- run actions -----------------------------------------------------------------------------------


def _run_action(request: HttpRequest, run_id: Any, action: str) -> HttpResponse:
    run = _get_run(request, run_id, with_spec=False)
    detail = reverse("runs:detail", kwargs={"run_id": run.pk})
    try:
        if action == "terminate":
            services.run_terminate(run=run)
            messages.success(request, "Terminating the run: running steps are being stopped.")
        elif action == "retry":
            services.run_retry(run=run)
            messages.success(request, "Retrying the failed steps.")
        elif action == "archive":
            services.run_archive(run=run)
            messages.success(request, "Archived the run.")
        elif action == "unarchive":
            services.run_unarchive(run=run)
            messages.success(request, "Restored the run.")
        elif action == "delete":
            services.run_delete(run=run)
            messages.success(request, f"Deleted run {run.display_name}.")
            return HttpResponseRedirect(_safe_next(request, reverse("runs:list")))
    except ServiceError as exc:
        messages.error(request, exc.message)
    return HttpResponseRedirect(detail)


@require_POST
def run_terminate(request: HttpRequest, run_id: str) -> HttpResponse:
    """Terminate an active run."""
    return _run_action(request, run_id, "terminate")


@require_POST
def run_retry(request: HttpRequest, run_id: str) -> HttpResponse:
    """Retry a failed or canceled run's failed steps."""
    return _run_action(request, run_id, "retry")


@require_POST
def run_archive(request: HttpRequest, run_id: str) -> HttpResponse:
    """Archive a run."""
    return _run_action(request, run_id, "archive")


@require_POST
def run_unarchive(request: HttpRequest, run_id: str) -> HttpResponse:
    """Restore an archived run."""
    return _run_action(request, run_id, "unarchive")


@require_POST
def run_delete(request: HttpRequest, run_id: str) -> HttpResponse:
    """Delete a finished run."""
    return _run_action(request, run_id, "delete")


# --- new run -----------------------------------------------------------------------------------------


def _new_run_source(request: HttpRequest) -> dict[str, Any]:
    """What the form runs: a pipeline version (chosen, or the cloned run's), or the
    cloned run's inline spec. Raises Http404 for ids the user may not see."""
    params = request.GET
    out: dict[str, Any] = {"pipeline": None, "version": None, "clone": None, "spec": None}
    try:
        if params.get("clone"):
            clone = selectors.run_get(user=request.user, run_id=params["clone"])
            out["clone"] = clone
            if clone.pipeline_version_id:
                out["version"] = clone.pipeline_version
                out["pipeline"] = clone.pipeline_version.pipeline
            else:
                out["spec"] = clone.pipeline_spec
        if params.get("pipeline") and not out["clone"]:
            out["pipeline"] = pipeline_selectors.pipeline_get(
                user=request.user, pipeline_id=params["pipeline"]
            )
        if params.get("version") and not out["clone"]:
            version = pipeline_selectors.pipeline_version_get(user=request.user, version_id=params["version"])
            out["version"] = version
            out["pipeline"] = version.pipeline
        if out["pipeline"] is not None and out["version"] is None:
            out["version"] = pipeline_selectors.pipeline_version_latest(pipeline=out["pipeline"])
    except NotFound as exc:
        raise Http404(exc.message) from exc
    if out["version"] is not None:
        out["spec"] = out["version"].pipeline_spec
    return out


def _form_initial(source: dict[str, Any], request: HttpRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    clone = source["clone"]
    now = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")
    if clone is not None:
        initial = {
            "display_name": f"Clone of {clone.display_name}"[:255],
            "description": clone.description,
            "experiment": str(clone.experiment_id)
            if clone.experiment.storage_state == StorageState.AVAILABLE
            else "",
            "pipeline_root": clone.pipeline_root if clone.pipeline_root != "" else "",
            "enable_caching": "" if clone.enable_caching is None else str(clone.enable_caching).lower(),
            "service_account": clone.service_account,
        }
        return initial, dict(clone.runtime_parameters or {})
    name = source["pipeline"].display_name if source["pipeline"] else "pipeline"
    initial = {
        "display_name": f"Run of {name} ({now})"[:255],
        "experiment": request.GET.get("experiment", ""),
        "run_type": "recurring" if request.GET.get("type") == "recurring" else "one-off",
    }
    return initial, {}


@require_http_methods(["GET", "POST"])
def run_new(request: HttpRequest) -> HttpResponse:
    """Start a run (or a recurring run) of a pipeline version, with typed parameters."""
    source = _new_run_source(request)
    pipelines = list(
        pipeline_selectors.pipeline_list(user=request.user, namespace=request.namespace).order_by(
            "display_name"
        )[:500]
    )
    versions = (
        list(pipeline_selectors.pipeline_version_list(pipeline=source["pipeline"]))
        if source["pipeline"]
        else []
    )
    experiments = [
        (str(e.pk), e.display_name)
        for e in experiment_selectors.experiment_list(user=request.user, namespace=request.namespace)
        .filter(storage_state=StorageState.AVAILABLE)
        .order_by("display_name")[:500]
    ]
    spec = source["spec"]
    parameters = root_parameters(spec) if spec else []
    initial, initial_params = _form_initial(source, request)
    form = RunForm(
        request.POST or None,
        parameters=parameters,
        experiments=experiments,
        initial=initial,
        initial_parameters=initial_params,
    )
    trigger_form = TriggerForm(request.POST or None, prefix="trigger") if TriggerForm is not None else None
    status = 200
    if request.method == "POST":
        status = 400
        recurring = request.POST.get("run_type") == "recurring"
        if spec is None:
            form.add_error(None, "Choose a pipeline and version first.")
        elif recurring and trigger_form is None:
            form.add_error("run_type", "Recurring runs are not available yet.")
        elif form.is_valid() and (not recurring or trigger_form.is_valid()):  # type: ignore[union-attr]
            response = _create_from_form(request, form, trigger_form if recurring else None, source)
            if response is not None:
                return response
    return render(
        request,
        "runs/new.html",
        {
            "form": form,
            "trigger_form": trigger_form,
            "source": source,
            "pipelines": pipelines,
            "versions": versions,
            "recurring_available": trigger_form is not None,
        },
        status=status,
    )


def _create_from_form(
    request: HttpRequest, form: RunForm, trigger_form: Any, source: dict[str, Any]
) -> HttpResponse | None:
    data = form.cleaned_data
    if not request.namespace:
        form.add_error(None, "You are not a member of any namespace: ask an administrator to add you to one.")
        return None
    experiment = None
    try:
        if data.get("experiment"):
            experiment = experiment_selectors.experiment_get(
                user=request.user, experiment_id=data["experiment"]
            )
    except NotFound:
        form.add_error("experiment", "Choose an experiment from the list.")
        return None
    common: dict[str, Any] = {
        "namespace": experiment.namespace if experiment else request.namespace,
        "user": request.user,
        "display_name": data["display_name"],
        "experiment": experiment,
        "pipeline_version": source["version"],
        "pipeline_spec": None if source["version"] else source["spec"],
        "platform_spec": None
        if source["version"]
        else (source["clone"].platform_spec if source["clone"] else None),
        "description": data.get("description", ""),
        "parameters": form.parameter_values(),
        "pipeline_root": data.get("pipeline_root", ""),
        "service_account": data.get("service_account", ""),
    }
    try:
        if trigger_form is not None:
            assert recurring_run_create is not None
            kwargs = dict(common)
            kwargs["pipeline"] = source["pipeline"]
            if data.get("always_latest") and source["pipeline"] is not None:
                kwargs["pipeline_version"] = None  # each firing runs the newest version
            recurring = recurring_run_create(**kwargs, **trigger_form.trigger_kwargs())
            messages.success(request, f"Created recurring run {recurring.display_name}.")
            return redirect("schedules:detail", recurring.pk)
        run = services.run_create(
            **common,
            enable_caching=form.caching(),
            cloned_from=source["clone"],
        )
    except ServiceError as exc:
        field = form.error_field_for(exc.field)
        trigger_fields = (
            set(trigger_form.fields) | TRIGGER_ERROR_FIELDS if trigger_form is not None else set()
        )
        if field is None and exc.field in trigger_fields:
            trigger_form.add_service_error(exc)
        else:
            form.add_error(field, exc.message)
        return None
    messages.success(request, f"Started run {run.display_name}.")
    return redirect("runs:detail", run_id=run.pk)


# --- run page ------------------------------------------------------------------------------------


def _node_details(overlay: Any) -> dict[str, dict[str, Any]]:
    return {
        node.id: {"label": node.label, "kind": node.kind, "component": node.component, "detail": node.detail}
        for node in overlay.graph.nodes
    }


def _run_parameters(run: Any) -> list[dict[str, Any]]:
    given = run.runtime_parameters or {}
    rows = []
    try:
        specs = root_parameters(run.pipeline_spec or {})
    except (AttributeError, TypeError):
        specs = []
    for spec in specs:
        rows.append(
            {
                "name": spec.name,
                "type": spec.type,
                "value": given.get(spec.name, spec.default),
                "is_default": spec.name not in given,
                "description": spec.description,
            }
        )
    known = {s.name for s in specs}
    rows += [
        {"name": k, "type": "", "value": v, "is_default": False, "description": ""}
        for k, v in given.items()
        if k not in known
    ]
    return rows


def _run_duration(run: Any) -> Any:
    if not run.started_at:
        return None
    return (run.finished_at or timezone.now()) - run.started_at


def _task_table_context(request: HttpRequest, run: Any) -> dict[str, Any]:
    qs = selectors.task_table(run=run)
    tstate = request.GET.get("tstate", "")
    if tstate in RuntimeState.values:
        qs = qs.filter(state=tstate)
    else:
        tstate = ""
    tq = request.GET.get("tq", "").strip()
    if tq:
        qs = qs.filter(key__icontains=tq)
    qs, tsort = apply_sort(qs, request.GET.get("tsort", "order"), TASK_SORTS, default="order")
    page = Paginator(qs, TASK_PAGE).get_page(request.GET.get("tpage"))
    return {"task_page": page, "tsort": tsort, "tstate": tstate, "tq": tq}


@require_GET
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    """The run page: Graph, Details, Pipeline spec and Tasks tabs."""
    run = _get_run(request, run_id)
    overlay = selectors.run_graph(run=run)
    drawing = selectors.run_graph_drawing(run=run, overlay=overlay) if overlay.graph.nodes else None
    panel = None
    if request.GET.get("task") or request.GET.get("node"):
        panel = _panel_context(request, run, overlay)
    context = {
        "run": run,
        "overlay": overlay,
        "drawing": drawing,
        "node_details": _node_details(overlay),
        "parameters": _run_parameters(run),
        "duration": _run_duration(run),
        "spec_yaml": yaml.safe_dump(run.pipeline_spec, sort_keys=False, allow_unicode=True, width=100),
        "is_active": run.state not in RuntimeState.terminal(),
        "has_loops": any(node.kind == "loop" for node in overlay.graph.nodes),
        "panel": panel,
        "can_terminate": run.state in RuntimeState.active() and run.state != RuntimeState.CANCELING,
        "can_retry": run.state in (RuntimeState.FAILED, RuntimeState.CANCELED),
        "can_delete": run.state not in RuntimeState.active(),
        "state_colors_fill": _state_fill(),
        **_task_table_context(request, run),
    }
    return render(request, "runs/detail.html", context)


def _state_fill() -> dict[str, Any]:
    from apps.core.graphviz_svg import STATE_FILL, STATE_STROKE

    return {"fill": STATE_FILL, "stroke": STATE_STROKE}


@require_GET
def run_status(request: HttpRequest, run_id: str) -> HttpResponse:
    """What the run page polls: run state, duration and per-node states and badges."""
    run = _get_run(request, run_id, with_spec=False)
    overlay = selectors.run_graph(run=run)
    duration = _run_duration(run)
    from apps.core.templatetags.canal import format_duration

    payload = {
        "state": run.state,
        "terminal": run.state in RuntimeState.terminal(),
        "error": run.error,
        "duration": format_duration(duration) if duration is not None else "—",
        "started": run.started_at.strftime("%Y-%m-%d %H:%M:%S") if run.started_at else "—",
        "signature": overlay.signature,
        "nodes": overlay.states,
        "badges": overlay.badges,
        "task_count": len(overlay.rows),
    }
    if request.GET.get("task"):  # the task whose panel is open: refresh it when its state changes
        try:
            payload["task_state"] = selectors.task_get(run=run, task_id=request.GET["task"]).state
        except NotFound:
            payload["task_state"] = None
    return _json(payload)


@require_GET
def run_graph_svg(request: HttpRequest, run_id: str) -> HttpResponse:
    """The current drawing of the run's DAG (an SVG document) and its element→node map."""
    run = _get_run(request, run_id, with_spec=False)
    overlay = selectors.run_graph(run=run)
    drawing = selectors.run_graph_drawing(run=run, overlay=overlay) if overlay.graph.nodes else None
    if drawing is None:
        raise Http404("this DAG cannot be drawn")
    return _json(
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
    run = _get_run(request, run_id, with_spec=False)
    return render(request, "runs/_tasks_table.html", {"run": run, **_task_table_context(request, run)})


# --- the node / task panel ------------------------------------------------------------------


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


def _task_panel(run: Any, task: Any) -> dict[str, Any]:
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
        "duration": (end - task.started_at) if task.started_at and end else None,
        "is_active": not task.is_terminal,
        "log_attempt": task.attempt or (attempts[-1].number if attempts else 0),
    }


def _key_order(row: dict[str, Any]) -> tuple[Any, ...]:
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
        return _task_panel(run, task)
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
            "loops": overlay.loop_rows.get(node_id, []),
        }
    if len(instances) == 1:
        try:
            task = selectors.task_get_detail(run=run, task_id=instances[0]["id"])
        except NotFound as exc:
            raise Http404(exc.message) from exc
        if task.kind in ("DAG", "ROOT"):
            return {**_group_panel(request, run, task), **base}
        return {**_task_panel(run, task), **base}
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
    children = list(
        selectors.task_children_under(run=run, key_prefix=task.key).values(
            "id", "key", "kind", "state", "started_at", "finished_at", "cached_from_id"
        )
    )
    children.sort(key=_key_order)
    return {
        "type": "group",
        "task": task,
        "page": _paged(request, children),
        "query": urlencode({"task": str(task.pk)}),
        "state_filter": "",
        "duration": (task.finished_at - task.started_at) if task.started_at and task.finished_at else None,
    }


@require_GET
def run_panel(request: HttpRequest, run_id: str) -> HttpResponse:
    """The panel fragment for a node or task (the run page loads it on click)."""
    run = _get_run(request, run_id)
    overlay = selectors.run_graph(run=run)
    panel = _panel_context(request, run, overlay)
    if not _is_fragment(request):
        query = urlencode({k: v for k, v in request.GET.items()})
        return redirect(f"{reverse('runs:detail', kwargs={'run_id': run.pk})}?{query}#graph")
    response = render(request, "runs/_panel.html", {"run": run, "panel": panel})
    response["Cache-Control"] = "no-store"
    return response


# --- logs --------------------------------------------------------------------------------------------


def _utf8_boundary(data: bytes, at_end: bool) -> bytes:
    """Cut a chunk before a UTF-8 sequence split by the read limit (it is read next time)."""
    if at_end:
        return data
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: keep looking for the lead byte
        if byte & 0x80 == 0:
            return data
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return data if back >= need else data[:-back]
    return data


def _task_for_log(request: HttpRequest, run_id: str, task_id: str) -> tuple[Any, Any]:
    run = _get_run(request, run_id, with_spec=False)
    try:
        task = selectors.task_get(run=run, task_id=task_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return run, task


def _attempt_param(request: HttpRequest) -> int | None:
    try:
        value = int(request.GET.get("attempt", "0"))
    except ValueError:
        return None
    return value if value > 0 else None


@require_GET
def task_log(request: HttpRequest, run_id: str, task_id: str) -> HttpResponse:
    """A chunk of a task attempt's log from ``offset`` (negative: from the end), as JSON
    text the page appends with textContent. ``active`` says whether to keep tailing."""
    _, task = _task_for_log(request, run_id, task_id)
    try:
        offset = int(request.GET.get("offset", "0"))
    except ValueError:
        offset = 0
    attempt = _attempt_param(request)
    active = task.state in RuntimeState.active() and (attempt is None or attempt == task.attempt)
    try:
        if offset < 0:  # the tail: from ``-offset`` bytes before the end
            size = selectors.task_log_read(task=task, attempt=attempt, offset=0, limit=0).size
            offset = max(0, size + offset)
            tail = True
        else:
            tail = False
        chunk = selectors.task_log_read(task=task, attempt=attempt, offset=offset, limit=LOG_CHUNK)
    except NotFound as exc:
        return _json({"error": exc.message, "active": active, "text": "", "at_end": True})
    data, start = chunk.data, chunk.offset
    if tail:  # a tail may start inside a UTF-8 sequence: skip its continuation bytes
        skip = 0
        while skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:
            skip += 1
        data, start = data[skip:], start + skip
    data = _utf8_boundary(data, chunk.at_end)
    return _json(
        {
            "text": data.decode("utf-8", errors="replace"),
            "offset": start,
            "next_offset": start + len(data),
            "size": chunk.size,
            "at_end": start + len(data) >= chunk.size,
            "active": active,
            "state": task.state,
            "attempt": attempt or task.attempt,
        }
    )


@require_GET
def task_log_download(request: HttpRequest, run_id: str, task_id: str) -> HttpResponse:
    """The whole log of one attempt, as a plain-text attachment."""
    run, task = _task_for_log(request, run_id, task_id)
    attempt = _attempt_param(request)
    try:
        chunks = selectors.task_log_stream(task=task, attempt=attempt)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    response = StreamingHttpResponse(chunks, content_type="text/plain; charset=utf-8")
    filename = f"{run.pk}-{task.name}-attempt-{attempt or task.attempt}.log".replace('"', "")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


# --- compare ----------------------------------------------------------------------------------------


def _differs(values: list[Any]) -> bool:
    rendered = {json.dumps(v, sort_keys=True, default=str) for v in values}
    return len(rendered) > 1


@require_GET
def run_compare(request: HttpRequest) -> HttpResponse:
    """2 to 10 runs side by side: parameters, scalar metrics, confusion matrices, ROC
    curves overlaid, and a per-step diff."""
    from apps.artifacts.visualizations import (
        confusion_from_metadata,
        format_metric,
        roc_from_metadata,
        roc_plot,
    )

    ids = []
    for value in request.GET.getlist("run"):
        for part in value.split(","):
            try:
                ids.append(uuid.UUID(part.strip()))
            except ValueError:
                continue
    ids = list(dict.fromkeys(ids))
    if not 2 <= len(ids) <= MAX_COMPARE:
        messages.error(request, f"Select between 2 and {MAX_COMPARE} runs to compare.")
        return redirect("runs:list")
    found = {r.pk: r for r in selectors.run_list(user=request.user).filter(pk__in=ids).defer(None)}
    if len(found) != len(ids):
        raise Http404("one of these runs does not exist")
    runs = [found[i] for i in ids]
    # Parameters, with each run's defaults filled in.
    param_values: dict[str, list[Any]] = {}
    for index, run in enumerate(runs):
        for row in _run_parameters(run):
            param_values.setdefault(row["name"], [None] * len(runs))[index] = row["value"]
    parameters = [
        {"name": name, "values": values, "differs": _differs(values)}
        for name, values in sorted(param_values.items())
    ]
    # Metrics, confusion matrices and ROC curves from the runs' artifacts (one query).
    metrics = artifact_selectors.run_metric_values(run_ids=ids)
    metric_names = sorted({name for values in metrics.values() for name in values})
    metric_rows = []
    for name in metric_names:
        values = [metrics.get(run.pk, {}).get(name) for run in runs]
        metric_rows.append(
            {
                "name": name,
                "values": [format_metric(v) if v is not None else "—" for v in values],
                "differs": _differs(values),
            }
        )
    artifacts = list(artifact_selectors.artifact_list_for_runs(run_ids=ids))
    index_of = {run.pk: i for i, run in enumerate(runs)}
    matrices: list[list[dict[str, Any]]] = [[] for _ in runs]
    curves = []
    for artifact in artifacts:
        if artifact.schema_title != "system.ClassificationMetrics":
            continue
        i = index_of[artifact.run_id]
        task_name = artifact.producer_task.name if artifact.producer_task else ""
        label = f"{runs[i].display_name} · {task_name or artifact.name}"
        matrix = confusion_from_metadata(artifact.metadata)
        if matrix:
            matrices[i].append({"title": f"{task_name} / {artifact.name}", "matrix": matrix})
        points = roc_from_metadata(artifact.metadata)
        if points:
            curves.append((label, points))
    steps = _step_diff(runs)
    return render(
        request,
        "runs/compare.html",
        {
            "runs": runs,
            "durations": [_run_duration(r) for r in runs],
            "parameters": parameters,
            "metric_rows": metric_rows,
            "matrices": list(zip(runs, matrices, strict=True)),
            "has_matrices": any(matrices),
            "roc": roc_plot(curves, width=560, height=400) if curves else None,
            "steps": steps,
        },
    )


MAX_DIFF_STEPS = 500


def _step_diff(runs: list[Any]) -> dict[str, Any]:
    from apps.core.templatetags.canal import format_duration

    per_run = [{row["key"]: row for row in selectors.task_compare_rows(run=run)} for run in runs]
    keys = sorted({k for rows in per_run for k in rows})
    truncated = len(keys) > MAX_DIFF_STEPS
    out = []
    for key in keys[:MAX_DIFF_STEPS]:
        cells = []
        for rows in per_run:
            row = rows.get(key)
            if row is None:
                cells.append(None)
                continue
            duration = (
                row["finished_at"] - row["started_at"] if row["started_at"] and row["finished_at"] else None
            )
            cells.append(
                {
                    "state": row["state"],
                    "duration": format_duration(duration) if duration is not None else "—",
                    "cached": bool(row["cached_from_id"]),
                    "outputs": ((row["outputs"] or {}).get("parameters") or {}),
                }
            )
        present = [c for c in cells if c is not None]
        output_names = sorted({n for c in present for n in c["outputs"]})
        changed_outputs = [
            n for n in output_names if _differs([c["outputs"].get(n) for c in cells if c is not None])
        ]
        differs = (
            len(present) != len(cells)
            or _differs([c["state"] for c in present])
            or _differs([c["cached"] for c in present])
            or bool(changed_outputs)
        )
        out.append({"key": key, "cells": cells, "differs": differs, "changed_outputs": changed_outputs})
    return {"rows": out, "truncated": truncated, "total": len(keys)}
