"""KFP's Executions pages: every step run across runs (a Task row of a container or
importer step), filterable, sortable and paged, and one execution's page with its
inputs, outputs, artifacts and cache origin."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.artifacts import selectors as artifact_selectors
from apps.core.choices import RuntimeState
from apps.core.exceptions import NotFound
from apps.core.listing import PAGE_SIZES, IdsFirstPaginator, page_size
from apps.core.middleware import NamespacedRequest
from apps.runs import selectors
from apps.runs.filters import CACHE_CHOICES


@require_GET
def execution_list(request: NamespacedRequest) -> HttpResponse:
    """The steps of the current namespace's runs: filter by pipeline, component, state,
    cache and name; a fixed number of queries whatever the page size."""

    found = selectors.execution_filter(
        user=request.user, namespace=request.namespace or None, params=request.GET, request=request
    )
    choices = selectors.execution_filter_choices(user=request.user, namespace=request.namespace or None)
    page = IdsFirstPaginator(found.qs, page_size(request)).get_page(request.GET.get("page"))
    query, sort = found.query, found.sort
    pipeline, component = found.applied("pipeline"), found.applied("component")
    state, cache = found.applied("state"), found.applied("cache")
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
