"""KFP's Executions pages: every step run across runs (a Task row of a container or
importer step), filterable, sortable and paged, and one execution's page with its
inputs, outputs, artifacts and cache origin."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.artifacts import selectors as artifact_selectors
from apps.core.choices import RuntimeState
from apps.core.exceptions import NotFound
from apps.core.listing import PAGE_SIZES, apply_sort, page_size, search_text
from apps.runs import selectors

EXECUTION_SORTS = {
    "name": "name",
    "component": "component_name",
    "state": "state",
    "started": "started_at",
    "duration": "duration",
    "created": "created_at",
}
CACHE_CHOICES = (("cached", "Cached"), ("executed", "Not cached"))


@require_GET
def execution_list(request: HttpRequest) -> HttpResponse:
    """The steps of the current namespace's runs: filter by pipeline, component, state,
    cache and name; a fixed number of queries whatever the page size."""

    qs = selectors.execution_list(user=request.user, namespace=request.namespace)
    choices = selectors.execution_filter_choices(user=request.user, namespace=request.namespace)
    query = search_text(request)
    if query:
        qs = qs.filter(name__icontains=query)
    pipeline = request.GET.get("pipeline", "")
    if pipeline:
        qs = qs.filter(run__pipeline_name=pipeline)
    component = request.GET.get("component", "")
    if component:
        qs = qs.filter(component_name=component)
    state = request.GET.get("state", "")
    if state in RuntimeState.values:
        qs = qs.filter(state=state)
    else:
        state = ""
    cache = request.GET.get("cache", "")
    if cache == "cached":
        qs = qs.filter(cached_from__isnull=False)
    elif cache == "executed":
        qs = qs.filter(cached_from__isnull=True)
    else:
        cache = ""
    qs, sort = apply_sort(qs, request.GET.get("sort", "-created"), EXECUTION_SORTS, default="-created")
    page = Paginator(qs, page_size(request)).get_page(request.GET.get("page"))
    return render(
        request,
        "runs/executions.html",
        {
            "page": page,
            "query": query,
            "pipeline": pipeline,
            "component": component,
            "state": state,
            "cache": cache,
            "sort": sort,
            "page_sizes": PAGE_SIZES,
            "pipelines": choices["pipelines"],
            "components": choices["components"],
            "state_choices": RuntimeState.choices[1:],
            "cache_choices": CACHE_CHOICES,
            "filtered": bool(query or pipeline or component or state or cache),
        },
    )


def _io(data: Any) -> dict[str, Any]:
    """A task's stored inputs or outputs as the page lists them: parameters as (name,
    value) and artifacts as (name, [{id, name, uri, schema_title}])."""

    data = data if isinstance(data, dict) else {}
    parameters = data.get("parameters") or {}
    artifacts = data.get("artifacts") or {}
    return {
        "parameters": sorted(parameters.items()) if isinstance(parameters, dict) else [],
        "artifacts": [
            (name, [ref for ref in refs if isinstance(ref, dict)])
            for name, refs in sorted(artifacts.items())
            if isinstance(refs, list)
        ]
        if isinstance(artifacts, dict)
        else [],
    }


@require_GET
def execution_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    """One execution: its run, pipeline, component, state, times, inputs and outputs,
    the execution it was cached from, the artifacts it produced."""

    try:
        task = selectors.execution_get(user=request.user, task_id=task_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return render(
        request,
        "runs/execution_detail.html",
        {
            "task": task,
            "run": task.run,
            "inputs": _io(task.inputs),
            "outputs": _io(task.outputs),
            "produced": list(artifact_selectors.artifact_list_for_task(task=task)),
        },
    )
