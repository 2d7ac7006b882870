"""Compare 2 to 10 runs: parameters, metrics, confusion matrices, ROC curves, a per-step diff."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from apps.artifacts import selectors as artifact_selectors
from apps.artifacts.visualizations import (
    confusion_from_metadata,
    format_metric,
    roc_from_metadata,
    roc_plot,
)
from apps.core.templatetags.canal import format_duration
from apps.runs import selectors
from apps.runs.views.common import MAX_COMPARE, _run_duration, _run_parameters


def _differs(values: list[Any]) -> bool:
    rendered = {json.dumps(v, sort_keys=True, default=str) for v in values}
    return len(rendered) > 1


@require_GET
def run_compare(request: HttpRequest) -> HttpResponse:
    """2 to 10 runs side by side: parameters, scalar metrics, confusion matrices, ROC
    curves overlaid, and a per-step diff."""

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
