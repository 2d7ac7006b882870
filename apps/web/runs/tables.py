"""The runs table, shared by the runs list and an experiment's Runs tab (NetBox calls
these tables): filtering, sorting, paging and metric columns in a fixed number of
queries whatever the page size."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from apps.artifacts import selectors as artifact_selectors
from apps.core.choices import RuntimeState
from apps.core.listing import PAGE_SIZES, IdsFirstPaginator, page_size, row_url
from apps.runs import selectors as run_selectors

MAX_METRIC_COLUMNS = 6
DEFAULT_METRIC_COLUMNS = 3
#: ``?sort=metric:accuracy`` (``-metric:accuracy`` descending) sorts by a metric column.
METRIC_SORT_PREFIX = "metric:"


def metric_of_sort(requested: str) -> str:
    """The metric name a ``sort`` parameter asks to sort by, or "" if it asks for none
    (or for a name no metric can have)."""
    key = requested.removeprefix("-")
    if not key.startswith(METRIC_SORT_PREFIX):
        return ""
    name = key.removeprefix(METRIC_SORT_PREFIX)
    return name if 0 < len(name) <= artifact_selectors.MAX_METRIC_NAME else ""


def runs_table_context(
    request: HttpRequest, qs: Any, *, archived: bool, extra_params: dict[str, str] | None = None
) -> dict[str, Any]:
    """Filter, sort, page and decorate a runs queryset (shared with the experiment page).
    Constant queries: the page, its count, and one query for all metric columns."""
    found = run_selectors.run_table_filter(runs=qs, archived=archived, params=request.GET, request=request)
    qs, query, state, sort = found.qs, found.query, found.applied("state"), found.sort
    requested = request.GET.get("sort", "-created")
    sort_metric = metric_of_sort(requested)
    if sort_metric:
        # A metric column: its order replaces the FilterSet's.
        descending = requested.startswith("-")
        qs = artifact_selectors.runs_order_by_metric(qs, name=sort_metric, descending=descending)
        sort = requested
    page = IdsFirstPaginator(qs, page_size(request)).get_page(request.GET.get("page"))
    runs = list(page.object_list)
    metrics, sortable = artifact_selectors.run_metric_table(run_ids=[r.pk for r in runs])
    available = sorted({name for _, values in metrics.items() for name in values})
    chosen = [m for m in request.GET.getlist("metric") if m in available][:MAX_METRIC_COLUMNS]
    if not chosen and "metric" not in request.GET:
        chosen = available[:DEFAULT_METRIC_COLUMNS]
    if sort_metric in available and sort_metric not in chosen:
        # The column the rows are sorted by is always shown.
        chosen = [*chosen[: MAX_METRIC_COLUMNS - 1], sort_metric]
    now = timezone.now()
    # Each row links its run, pipeline, recurring run and experiment: one reverse per
    # route for the whole page, not one per link.
    run_url, pipeline_url = row_url("runs:detail"), row_url("pipelines:detail")
    schedule_url, experiment_url = row_url("schedules:detail"), row_url("experiments:detail")
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
                "url": run_url(run.pk),
                "pipeline_url": (
                    f"{pipeline_url(run.pipeline_version.pipeline_id)}?version={run.pipeline_version_id}"
                    if run.pipeline_version_id
                    else ""
                ),
                "schedule_url": schedule_url(run.recurring_run_id) if run.recurring_run_id else "",
                "experiment_url": experiment_url(run.experiment_id) if run.experiment_id else "",
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
        "metric_headers": [
            {"name": m, "sort_key": f"{METRIC_SORT_PREFIX}{m}" if m in sortable else ""} for m in chosen
        ],
        "metrics_available": available,
        "extra_params": extra_params or {},
    }
