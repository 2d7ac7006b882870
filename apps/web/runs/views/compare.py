"""Compare 2 to 10 runs: parameters, metrics (also as a table of runs sortable by any
metric), confusion matrices, ROC curves, Markdown and HTML side by side, a per-step diff."""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from apps.artifacts import selectors as artifact_selectors
from apps.artifacts.visualizations import (
    MAX_HTML_BYTES,
    confusion_from_metadata,
    decode_text,
    format_metric,
    render_markdown,
    roc_from_metadata,
    roc_plot,
)
from apps.core.exceptions import NotFound
from apps.core.templatetags.canal import format_duration
from apps.runs import selectors
from apps.web.runs.views.common import MAX_COMPARE, run_duration, run_parameter_rows

# Markdown and HTML artifacts compared side by side: at most this many (task, artifact) rows,
# each read from storage once per run (bounded reads, as on the run page).
MAX_DOCUMENT_ROWS = 10
COMPARE_MARKDOWN_BYTES = 256 * 1024
DOCUMENT_TYPES = {"system.Markdown": "markdown", "system.HTML": "html"}


def _natural(text: str) -> tuple[Any, ...]:
    """Sort key comparing runs of digits as numbers: ``#2`` before ``#10``. The split
    alternates text and numbers, so two keys compare position by position."""
    parts = re.split(r"([0-9]+)", text)
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts))


def _differs(values: list[Any]) -> bool:
    rendered = {json.dumps(v, sort_keys=True, default=str) for v in values}
    return len(rendered) > 1


@require_GET
def run_compare(request: HttpRequest) -> HttpResponse:
    """2 to 10 runs side by side: parameters, scalar metrics (also as a table of runs
    sorted by ``?sort=<metric>&dir=asc|desc``), confusion matrices, ROC curves overlaid,
    Markdown and HTML artifacts, and a per-step diff."""

    ids = []
    for value in request.GET.getlist("run"):
        for part in value.split(","):
            try:
                ids.append(uuid.UUID(part.strip()))
            except ValueError:
                continue
    ids = list(dict.fromkeys(ids))
    if "csrfmiddlewaretoken" in request.GET:
        # An old link or form put the CSRF token into the URL: drop it from the address.
        query = [(k, v) for k, v in request.GET.lists() if k != "csrfmiddlewaretoken"]
        return HttpResponseRedirect(f"{request.path}?{urlencode(query, doseq=True)}")
    if not 2 <= len(ids) <= MAX_COMPARE:
        messages.error(request, f"Select between 2 and {MAX_COMPARE} runs to compare.")
        return redirect("runs:list")
    found = {r.pk: r for r in selectors.run_list_by_ids(user=request.user, ids=ids, with_spec=True)}
    if len(found) != len(ids):
        raise Http404("one of these runs does not exist")
    runs = [found[i] for i in ids]
    # Parameters, with each run's defaults filled in.
    param_values: dict[str, list[Any]] = {}
    for index, run in enumerate(runs):
        for row in run_parameter_rows(run):
            param_values.setdefault(row["name"], [None] * len(runs))[index] = row["value"]
    parameters = [
        {"name": name, "values": values, "differs": _differs(values)}
        for name, values in sorted(param_values.items())
    ]
    # Metrics, confusion matrices and ROC curves from the runs' artifacts (one query).
    metrics = artifact_selectors.run_metric_values(run_ids=ids)
    metric_names = sorted({name for _, values in metrics.items() for name in values})
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
            curves.append((i, label, points))
    # The legend lists the curves in the order of the runs' columns.
    curves.sort(key=lambda curve: curve[0])
    steps = _step_diff(runs)
    return render(
        request,
        "runs/compare.html",
        {
            "runs": runs,
            "durations": [run_duration(r) for r in runs],
            "parameters": parameters,
            "metric_rows": metric_rows,
            "matrices": list(zip(runs, matrices, strict=True)),
            "has_matrices": any(matrices),
            "roc": roc_plot([(label, points) for _, label, points in curves], width=560, height=400)
            if curves
            else None,
            "steps": steps,
            "documents": _documents(runs, artifacts),
            "ranking": _ranking(request, runs, metric_names, metrics),
        },
    )


MAX_DIFF_STEPS = 500


def _step_diff(runs: list[Any]) -> dict[str, Any]:

    per_run = [{row["key"]: row for row in selectors.task_compare_rows(run=run)} for run in runs]
    keys = sorted({k for rows in per_run for k in rows}, key=_natural)
    truncated = len(keys) > MAX_DIFF_STEPS
    out = []
    for key in keys[:MAX_DIFF_STEPS]:
        cells: list[dict[str, Any] | None] = []
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


def _documents(runs: list[Any], artifacts: list[Any]) -> dict[str, Any]:
    """Markdown and HTML artifacts side by side: one row per (producing task, artifact
    name), one column per run. Markdown is rendered and cleaned (markdown-it-py, then nh3)
    by the run page's render_markdown; HTML is never put into this page: it is loaded
    into the sandboxed iframe of artifacts:frame, which serves it under its own CSP.
    Reads are bounded: at most MAX_DOCUMENT_ROWS rows, COMPARE_MARKDOWN_BYTES of each
    Markdown file, and only the size of each HTML file."""
    index_of = {run.pk: i for i, run in enumerate(runs)}
    slots: dict[tuple[str, str, str], list[Any]] = {}
    for artifact in artifacts:
        kind = DOCUMENT_TYPES.get(artifact.schema_title)
        if kind is None:
            continue
        task_key = artifact.producer_task.key if artifact.producer_task else ""
        cells = slots.setdefault((kind, task_key, artifact.name), [None] * len(runs))
        i = index_of[artifact.run_id]
        if cells[i] is None:
            artifact.run = runs[i]  # already loaded: no query per artifact for its run
            cells[i] = artifact
    ordered = sorted(slots.items(), key=lambda item: (item[0][0], _natural(item[0][1]), item[0][2]))
    rows = []
    for (kind, task_key, name), cells in ordered[:MAX_DOCUMENT_ROWS]:
        rendered = [_document_cell(kind, artifact) if artifact is not None else None for artifact in cells]
        rows.append(
            {
                "kind": kind,
                "title": f"{task_key} / {name}" if task_key else name,
                "cells": list(zip(runs, rendered, strict=True)),
            }
        )
    return {
        "by_kind": [(kind, [row for row in rows if row["kind"] == kind]) for kind in ("markdown", "html")],
        "truncated": len(ordered) > MAX_DOCUMENT_ROWS,
        "rows_shown": len(rows),
        "total": len(ordered),
    }


def _document_cell(kind: str, artifact: Any) -> dict[str, Any]:
    cell: dict[str, Any] = {"artifact": artifact, "markdown": "", "frame": False, "notice": ""}
    try:
        if kind == "markdown":
            data, truncated, _ = artifact_selectors.artifact_read(
                artifact=artifact, limit=COMPARE_MARKDOWN_BYTES
            )
            text = decode_text(data)
            if text is None:
                cell["notice"] = "the content is not UTF-8 text"
            else:
                cell["markdown"] = render_markdown(text)
                if truncated:
                    cell["notice"] = f"only the first {COMPARE_MARKDOWN_BYTES // 1024} KiB are shown"
        else:
            _, _, size = artifact_selectors.artifact_read(artifact=artifact, limit=1)
            if size > MAX_HTML_BYTES:
                cell["notice"] = "larger than 2 MiB: open the artifact to see it"
            else:
                # artifacts:frame serves the artifact's first visualization, its HTML page.
                cell["frame"] = True
    except NotFound as exc:
        cell["notice"] = exc.message
    return cell


def _sortable(value: Any) -> bool:
    return value is not None and not math.isnan(float(value))


def _ranking(
    request: HttpRequest, runs: list[Any], metric_names: list[str], metrics: dict[Any, dict[str, Any]]
) -> dict[str, Any]:
    """The runs as rows and the metrics as columns, sorted on the server by the metric
    named in ``?sort=`` (``?dir=asc`` or ``desc``) so that sorting works without
    JavaScript. Runs without that metric come last either way."""
    wanted = request.GET.get("sort", "")
    direction = "asc" if request.GET.get("dir") == "asc" else "desc"
    error = ""
    if wanted and wanted not in metric_names:
        error = f"There is no metric named {wanted!r} in these runs; the runs are in the order selected."
        wanted = ""
    rows = [{"run": run, "raw": [metrics.get(run.pk, {}).get(name) for name in metric_names]} for run in runs]
    if wanted:
        column = metric_names.index(wanted)
        present = [row for row in rows if _sortable(row["raw"][column])]
        missing = [row for row in rows if not _sortable(row["raw"][column])]
        present.sort(key=lambda row: float(row["raw"][column]), reverse=direction == "desc")
        rows = present + missing
    for row in rows:
        row["values"] = [format_metric(v) if v is not None else None for v in row["raw"]]
    base = [("run", str(run.pk)) for run in runs]
    columns = []
    for name in metric_names:
        active = name == wanted
        next_direction = "asc" if active and direction == "desc" else "desc"
        columns.append(
            {
                "name": name,
                "active": active,
                "direction": direction if active else "",
                "url": "?" + urlencode([*base, ("sort", name), ("dir", next_direction)]),
            }
        )
    return {"columns": columns, "rows": rows, "sort": wanted, "dir": direction, "error": error}
