"""What the UI draws for an artifact: pure functions from an artifact's type,
metadata and (a bounded read of) its content to plain data the templates render.

* ``system.Metrics``: its scalar metadata, as a table.
* ``system.ClassificationMetrics``: ``confusionMatrix`` as a heat grid and
  ``confidenceMetrics`` as an ROC curve (SVG coordinates computed here).
* ``system.Markdown``: rendered by markdown-it-py with raw HTML off, then cleaned by
  nh3 (an allow-list of tags, attributes and URL schemes): raw HTML and
  ``javascript:`` links come out inert.
* ``system.HTML``: the text, served to an ``<iframe sandbox="allow-scripts">``
  (an opaque origin: its scripts cannot reach the page, its cookies or the API).
* ``system.Dataset`` holding CSV: the first 100 rows as a table.
* KFP v1 ``mlpipeline-ui-metadata`` (confusion_matrix, roc, table, markdown,
  web-app) and ``mlpipeline-metrics``.

Nothing here builds markup from strings except ``render_markdown`` (whose output
is nh3's); templates escape everything else. Content is read through a callable
the caller supplies, so this module never touches storage or the database.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import nh3
from markdown_it import MarkdownIt

MAX_MARKDOWN_BYTES = 1024 * 1024
MAX_HTML_BYTES = 2 * 1024 * 1024
MAX_CSV_BYTES = 2 * 1024 * 1024
MAX_JSON_BYTES = 2 * 1024 * 1024
CSV_ROWS = 100
MAX_MATRIX = 60  # labels per side beyond which a matrix is not drawn
MAX_ROC_MARKERS = 120

UI_METADATA_NAMES = frozenset({"mlpipeline-ui-metadata", "mlpipeline_ui_metadata"})
METRICS_FILE_NAMES = frozenset({"mlpipeline-metrics", "mlpipeline_metrics"})
ROC_COLOURS = ("#1d4ed8", "#d64545", "#1f9d55", "#e5a00d", "#7d4fd6", "#1b98a8", "#c2410c", "#475569")

MARKDOWN_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "span", "strong", "sub",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
MARKDOWN_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
    "code": {"class"},
}
URL_SCHEMES = {"http", "https", "mailto"}


class ContentUnavailable(Exception):
    """The artifact's content cannot be read (missing, outside the root, too large)."""


Reader = Callable[[int], tuple[bytes, bool]]  # limit -> (data, truncated)


@dataclass(frozen=True)
class Visualization:
    """One thing to draw: ``kind`` picks the template, ``data`` is what it needs."""

    kind: str  # metrics | confusion_matrix | roc | markdown | html | table | notice
    title: str
    data: Any = field(default=None)


# --- scalars -------------------------------------------------------------------------


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def metric_scalars(metadata: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    """The scalar entries of a Metrics artifact's metadata, by name (display_name skipped)."""
    out = []
    for key, value in sorted((metadata or {}).items()):
        if key == "display_name" or isinstance(value, dict | list) or value is None:
            continue
        out.append((str(key), value))
    return out


def format_metric(value: Any, fmt: str = "") -> str:
    """A metric value for a table cell: numbers to 4 significant decimals, PERCENTAGE as %."""
    if _is_number(value):
        number = float(value)
        if not math.isfinite(number):
            return str(number)
        if fmt.upper() == "PERCENTAGE":
            return f"{number * 100:.2f}%"
        if float(number).is_integer() and abs(number) < 1e15:
            return str(int(number))
        return f"{number:.6g}"
    return str(value)


def mlpipeline_metrics(text: str) -> list[dict[str, Any]]:
    """KFP v1 ``{"metrics": [{name, numberValue, format}]}``; malformed entries are skipped."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: also an integer too long to convert
        return []
    metrics = doc.get("metrics") if isinstance(doc, dict) else None
    out = []
    for item in metrics if isinstance(metrics, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        value = item.get("numberValue")
        if not _is_number(value):
            continue
        fmt = str(item.get("format") or "RAW")
        out.append({"name": item["name"], "value": value, "format": fmt, "text": format_metric(value, fmt)})
    return out


# --- confusion matrix ----------------------------------------------------------------


def _cell_shade(value: float, top: float) -> int:
    """The cell's heat as one of 11 steps (0-10), drawn by the ``cm-s<N>`` CSS classes:
    a class, not a style attribute, because the dashboard's CSP allows no inline style."""
    share = 0.0 if top <= 0 else max(0.0, min(1.0, value / top))
    return round(share * 10)


def confusion_matrix(labels: Sequence[Any], rows: Sequence[Sequence[Any]]) -> dict[str, Any] | None:
    """A heat grid: rows are true labels, columns predicted ones. None if malformed."""
    names = [str(label) for label in labels]
    size = len(names)
    if size == 0 or size > MAX_MATRIX or len(rows) != size:
        return None
    values: list[list[float]] = []
    for row in rows:
        if len(row) != size or not all(_is_number(v) for v in row):
            return None
        values.append([float(v) for v in row])
    top = max((v for row in values for v in row), default=0.0)
    return {
        "labels": names,
        "rows": [
            {
                "label": names[i],
                "cells": [
                    {
                        "value": format_metric(v),
                        "shade": _cell_shade(v, top),
                        "diagonal": i == j,
                        "title": f"true {names[i]}, predicted {names[j]}: {format_metric(v)}",
                    }
                    for j, v in enumerate(row)
                ],
            }
            for i, row in enumerate(values)
        ],
        "max": format_metric(top),
        "total": format_metric(sum(sum(row) for row in values)),
    }


def confusion_from_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``confusionMatrix{annotationSpecs[{displayName}], rows[{row[]}]}`` as a heat grid."""
    matrix = (metadata or {}).get("confusionMatrix")
    if not isinstance(matrix, dict):
        return None
    specs = matrix.get("annotationSpecs")
    rows = matrix.get("rows")
    if not isinstance(specs, list) or not isinstance(rows, list):
        return None
    labels = [s.get("displayName", "") if isinstance(s, dict) else s for s in specs]
    values = [r.get("row") if isinstance(r, dict) else r for r in rows]
    matrix_rows = [v for v in values if isinstance(v, list)]
    if len(matrix_rows) != len(values):
        return None
    return confusion_matrix(labels, matrix_rows)


# --- ROC ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RocPoint:
    """One reading: false positive rate, true positive rate (recall), threshold."""

    fpr: float
    tpr: float
    threshold: float | None


def roc_from_metadata(metadata: Mapping[str, Any] | None) -> list[RocPoint] | None:
    """``confidenceMetrics[{confidenceThreshold, falsePositiveRate, recall}]`` as points."""
    readings = (metadata or {}).get("confidenceMetrics")
    if not isinstance(readings, list) or not readings:
        return None
    points = []
    for item in readings:
        if not isinstance(item, dict):
            continue
        fpr, tpr = item.get("falsePositiveRate"), item.get("recall")
        if not (_is_number(fpr) and _is_number(tpr)):
            continue
        threshold = item.get("confidenceThreshold")
        points.append(RocPoint(float(fpr), float(tpr), float(threshold) if _is_number(threshold) else None))
    return points or None


def _clamp01(value: float) -> float:
    return 0.0 if not math.isfinite(value) else max(0.0, min(1.0, value))


def roc_plot(
    curves: Sequence[tuple[str, Sequence[RocPoint]]], *, width: int = 380, height: int = 320
) -> dict[str, Any]:
    """SVG geometry for one or more ROC curves on shared axes (FPR → x, TPR → y)."""
    left, right, top, bottom = 46, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(v: float) -> float:
        return round(left + _clamp01(v) * plot_w, 2)

    def y(v: float) -> float:
        return round(top + (1 - _clamp01(v)) * plot_h, 2)

    drawn = []
    for index, (label, points) in enumerate(curves):
        ordered = sorted(points, key=lambda p: (p.fpr, p.tpr))
        step = max(1, math.ceil(len(ordered) / MAX_ROC_MARKERS))
        drawn.append(
            {
                "label": label,
                "colour": ROC_COLOURS[index % len(ROC_COLOURS)],
                "points": " ".join(f"{x(p.fpr)},{y(p.tpr)}" for p in ordered),
                "markers": [
                    {
                        "x": x(p.fpr),
                        "y": y(p.tpr),
                        "title": (
                            f"{label}: threshold {format_metric(p.threshold)}, "
                            f"FPR {format_metric(p.fpr)}, TPR {format_metric(p.tpr)}"
                            if p.threshold is not None
                            else f"{label}: FPR {format_metric(p.fpr)}, TPR {format_metric(p.tpr)}"
                        ),
                    }
                    for p in ordered[::step]
                ],
                "count": len(ordered),
            }
        )
    ticks = [round(i / 5, 1) for i in range(6)]
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "right": left + plot_w,
        "bottom": top + plot_h,
        "plot_w": plot_w,
        "plot_h": plot_h,
        "curves": drawn,
        "xticks": [{"x": x(t), "label": f"{t:g}"} for t in ticks],
        "yticks": [{"y": y(t), "label": f"{t:g}"} for t in ticks],
        "diagonal": {"x1": x(0), "y1": y(0), "x2": x(1), "y2": y(1)},
        "xlabel_y": height - 6,
        "xlabel_x": left + plot_w / 2,
        "ylabel_x": 12,
        "ylabel_y": top + plot_h / 2,
    }


# --- Markdown, CSV ----------------------------------------------------------------------------

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)


def render_markdown(text: str) -> str:
    """Markdown to HTML that is safe to embed: raw HTML is escaped by markdown-it
    (``html: False``) and the result is cleaned by nh3 (allowed tags, attributes and
    http/https/mailto URLs only; links get ``rel="noopener noreferrer nofollow"``)."""
    html = _markdown.render(text)
    return nh3.clean(
        html,
        tags=MARKDOWN_TAGS,
        attributes=MARKDOWN_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def decode_text(data: bytes) -> str | None:
    """UTF-8 text, or None if the bytes are not text (NULs or undecodable)."""
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 4:  # a multi-byte character cut by the read limit
            return data[: exc.start].decode("utf-8", errors="strict")
        return None


def csv_table(
    text: str, *, max_rows: int = CSV_ROWS, header: Sequence[str] | None = None, has_header: bool = True
) -> dict[str, Any]:
    """The first ``max_rows`` rows of CSV text; the first line is the header unless given."""
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] and "," not in text.split("\n", 1)[0] else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[list[str]] = []
    head = list(header) if header else []
    truncated = False
    try:
        for index, row in enumerate(reader):
            if index == 0 and not header and has_header:
                head = row
                continue
            if len(rows) >= max_rows:
                truncated = True
                break
            rows.append(row)
    except csv.Error:
        truncated = True
    width = max([len(head), *(len(r) for r in rows)], default=0)
    return {
        "header": head + [""] * (width - len(head)),
        "rows": [r + [""] * (width - len(r)) for r in rows],
        "truncated": truncated,
    }


def looks_like_csv(uri: str, text: str) -> bool:
    """A .csv/.tsv file, or text whose first two lines split into the same ≥2 fields."""
    lowered = uri.lower()
    if lowered.endswith((".csv", ".tsv")):
        return True
    lines = [line for line in text.splitlines()[:2] if line.strip()]
    if len(lines) < 2:
        return False
    for delimiter in (",", "\t"):
        try:
            counts = [len(next(csv.reader([line], delimiter=delimiter))) for line in lines]
        except (csv.Error, StopIteration):
            continue
        if counts[0] >= 2 and counts[0] == counts[1]:
            return True
    return False


# --- KFP v1 ui metadata ---------------------------------------------------------------------------


def _schema_columns(output: Mapping[str, Any]) -> list[str]:
    schema = output.get("schema")
    if isinstance(schema, list):
        return [str(col.get("name", "")) if isinstance(col, dict) else str(col) for col in schema]
    return []


def _inline_source(output: Mapping[str, Any]) -> str | None:
    source = output.get("source")
    if not isinstance(source, str):
        return None
    return source if output.get("storage") == "inline" else None


def _v1_confusion(output: Mapping[str, Any], source: str) -> dict[str, Any] | None:
    columns = _schema_columns(output) or ["target", "predicted", "count"]
    table = csv_table(source, max_rows=MAX_MATRIX * MAX_MATRIX, header=columns)
    try:
        t_col, p_col, c_col = (columns.index(n) for n in ("target", "predicted", "count"))
    except ValueError:
        t_col, p_col, c_col = 0, 1, 2
    labels = [str(label) for label in output.get("labels") or []]
    counts: dict[tuple[str, str], float] = {}
    for row in table["rows"]:
        try:
            target, predicted, count = row[t_col], row[p_col], float(row[c_col])
        except (IndexError, ValueError):
            continue
        counts[(target, predicted)] = counts.get((target, predicted), 0.0) + count
        for label in (target, predicted):
            if label not in labels:
                labels.append(label)
    return confusion_matrix(labels, [[counts.get((t, p), 0.0) for p in labels] for t in labels])


def _v1_roc(source: str, columns: list[str]) -> list[RocPoint]:
    columns = columns or ["fpr", "tpr", "thresholds"]
    table = csv_table(source, max_rows=10_000, header=columns)
    index = {name: i for i, name in enumerate(columns)}
    f_i, t_i, th_i = index.get("fpr", 0), index.get("tpr", 1), index.get("thresholds", 2)
    points = []
    for row in table["rows"]:
        try:
            fpr, tpr = float(row[f_i]), float(row[t_i])
        except (IndexError, ValueError):
            continue
        try:
            threshold: float | None = float(row[th_i])
        except (IndexError, ValueError):
            threshold = None
        points.append(RocPoint(fpr, tpr, threshold))
    return points


def ui_metadata_visualizations(text: str) -> list[Visualization]:
    """Each output of a v1 ``mlpipeline-ui-metadata`` document as a Visualization."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: also an integer too long to convert
        return [Visualization("notice", "UI metadata", "the file is not valid JSON")]
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, list):
        return [Visualization("notice", "UI metadata", 'expected {"outputs": [...]}')]
    out: list[Visualization] = []
    for number, output in enumerate(outputs, start=1):
        if not isinstance(output, dict):
            continue
        kind = str(output.get("type", ""))
        title = f"{kind or 'output'} #{number}"
        source = _inline_source(output)
        if source is None:
            where = output.get("source") if isinstance(output.get("source"), str) else ""
            out.append(
                Visualization(
                    "notice",
                    title,
                    f"source {where!r} is not inline; Canal renders inline sources only"
                    if where
                    else "no source",
                )
            )
            continue
        if kind == "confusion_matrix":
            matrix = _v1_confusion(output, source)
            out.append(
                Visualization("confusion_matrix", "Confusion matrix", matrix)
                if matrix
                else Visualization("notice", title, "the confusion matrix could not be read")
            )
        elif kind == "roc":
            points = _v1_roc(source, _schema_columns(output))
            out.append(
                Visualization("roc", "ROC curve", roc_plot([("ROC", points)]))
                if points
                else Visualization("notice", title, "the ROC data could not be read")
            )
        elif kind == "table":
            header = [str(h) for h in output.get("header") or []] or None
            out.append(Visualization("table", "Table", csv_table(source, header=header)))
        elif kind == "markdown":
            out.append(Visualization("markdown", "Markdown", render_markdown(source)))
        elif kind == "web-app":
            out.append(Visualization("html", "Web app", source))
        else:
            out.append(Visualization("notice", title, f"Canal does not render {kind!r} outputs"))
    return out


# --- dispatch --------------------------------------------------------------------------------------


def _read_text(read: Reader, limit: int) -> tuple[str, bool]:
    data, truncated = read(limit)
    text = decode_text(data)
    if text is None:
        raise ContentUnavailable("the content is not UTF-8 text")
    return text, truncated


def artifact_visualizations(
    *, schema_title: str, name: str, uri: str, metadata: Mapping[str, Any] | None, read: Reader
) -> list[Visualization]:
    """Everything Canal draws for one artifact (possibly nothing)."""
    metadata = metadata or {}
    out: list[Visualization] = []
    try:
        if schema_title == "system.Metrics":
            rows = [(k, format_metric(v)) for k, v in metric_scalars(metadata)]
            out.append(Visualization("metrics", "Metrics", rows))
        elif schema_title == "system.ClassificationMetrics":
            matrix = confusion_from_metadata(metadata)
            if matrix:
                out.append(Visualization("confusion_matrix", "Confusion matrix", matrix))
            points = roc_from_metadata(metadata)
            if points:
                out.append(Visualization("roc", "ROC curve", roc_plot([(name, points)])))
            scalars = [(k, format_metric(v)) for k, v in metric_scalars(metadata)]
            if scalars:
                out.append(Visualization("metrics", "Metrics", scalars))
            if not out:
                out.append(Visualization("notice", "Classification metrics", "no matrix or ROC data logged"))
        elif schema_title == "system.Markdown":
            text, truncated = _read_text(read, MAX_MARKDOWN_BYTES)
            out.append(Visualization("markdown", "Markdown", render_markdown(text)))
            if truncated:
                out.append(Visualization("notice", "Markdown", "only the first 1 MiB is shown"))
        elif schema_title == "system.HTML":
            text, truncated = _read_text(read, MAX_HTML_BYTES)
            if truncated:
                out.append(Visualization("notice", "HTML", "larger than 2 MiB: open it directly"))
            else:
                out.append(Visualization("html", "HTML", text))
        elif name in UI_METADATA_NAMES:
            text, _ = _read_text(read, MAX_JSON_BYTES)
            out.extend(ui_metadata_visualizations(text))
        elif name in METRICS_FILE_NAMES:
            text, _ = _read_text(read, MAX_JSON_BYTES)
            rows = [(m["name"], m["text"]) for m in mlpipeline_metrics(text)]
            out.append(Visualization("metrics", "Metrics", rows))
        elif schema_title == "system.Dataset":
            data, _ = read(MAX_CSV_BYTES)
            csv_text = decode_text(data)
            if csv_text is not None and looks_like_csv(uri, csv_text):
                out.append(Visualization("table", f"First {CSV_ROWS} rows", csv_table(csv_text)))
    except ContentUnavailable as exc:
        out.append(Visualization("notice", schema_title, str(exc)))
    return out


def metric_values_of(
    rows: Iterable[Mapping[str, Any]], read_metrics_file: Callable[[Mapping[str, Any]], str | None]
) -> dict[str, Any]:
    """Scalar metrics by name from a run's metric artifacts (``schema_title``, ``name``,
    ``metadata`` keys); v1 ``mlpipeline-metrics`` files are read with the callable."""
    values: dict[str, Any] = {}
    for row in rows:
        if row.get("name") in METRICS_FILE_NAMES:
            text = read_metrics_file(row)
            for metric in mlpipeline_metrics(text or ""):
                values[metric["name"]] = metric["value"]
        else:
            for key, value in metric_scalars(row.get("metadata")):
                if _is_number(value):
                    values[key] = value
    return values
