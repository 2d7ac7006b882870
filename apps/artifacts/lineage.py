"""The artifact lineage drawn as server-rendered SVG (no ``dot``, no script): seven
columns, left to right — the producers of the producer's inputs, those inputs, the
producer, the artifact, its consumers, their outputs, and those outputs' consumers.
Empty columns are left out. Every node is an SVG link to its page, so the drawing works
with JavaScript off; all text is escaped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from apps.core.graphviz_svg import STATE_FILL, STATE_STROKE

NODE_W = 190
NODE_H = 44
COL_GAP = 56
ROW_GAP = 14
PAD = 8
MAX_CHARS = 26
ARTIFACT_FILL = "#fff7e6"
ARTIFACT_STROKE = "#c27c0e"
FOCUS_FILL = "#fde7b0"


@dataclass
class Node:
    """One box of the drawing: a task or an artifact."""

    id: str
    label: str
    sublabel: str
    href: str
    kind: str  # "task" or "artifact"
    state: str = ""
    focus: bool = False


@dataclass
class Lineage:
    """Columns of nodes and the edges (source id, target id) between them."""

    columns: list[list[Node]] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)


def _task_node(task: Any) -> Node:
    return Node(
        id=f"t:{task.pk}",
        label=task.display_name or task.name,
        sublabel=task.component_name or task.key,
        href=reverse("executions:detail", args=[task.pk]),
        kind="task",
        state=task.state,
    )


def _artifact_node(artifact: Any, *, focus: bool = False) -> Node:
    return Node(
        id=f"a:{artifact.pk}",
        label=artifact.display_name or artifact.name,
        sublabel=f"{artifact.schema_title} #{artifact.pk}",
        href=reverse("artifacts:detail", args=[artifact.pk]),
        kind="artifact",
        focus=focus,
    )


def lineage_graph(data: dict[str, Any]) -> Lineage:
    """The columns and edges of ``apps.artifacts.selectors.artifact_lineage``'s result."""

    columns: list[list[Node]] = [[] for _ in range(7)]
    edges: list[tuple[str, str]] = []
    placed: set[str] = set()

    def put(column: int, node: Node) -> str:
        if node.id not in placed:
            placed.add(node.id)
            columns[column].append(node)
        return node.id

    focus = put(3, _artifact_node(data["artifact"], focus=True))
    producer = data["producer"]
    if producer is not None:
        producer_id = put(2, _task_node(producer))
        edges.append((producer_id, focus))
        for item in data["inputs"]:
            input_id = put(1, _artifact_node(item["artifact"]))
            edges.append((input_id, producer_id))
            if item["producer"] is not None:
                edges.append((put(0, _task_node(item["producer"])), input_id))
    for item in data["consumers"]:
        consumer_id = put(4, _task_node(item["task"]))
        edges.append((focus, consumer_id))
        for output in item["outputs"]:
            edges.append((consumer_id, put(5, _artifact_node(output))))
    for item in data["outputs"]:
        output_id = f"a:{item['artifact'].pk}"
        for consumer in item["consumers"]:
            edges.append((output_id, put(6, _task_node(consumer))))
    return Lineage(columns=[c for c in columns if c], edges=list(dict.fromkeys(edges)))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def lineage_svg(lineage: Lineage) -> SafeString:
    """The lineage as an inline ``<svg>`` whose nodes are links (presentation attributes
    only: the Content-Security-Policy forbids inline style)."""

    rows = max((len(c) for c in lineage.columns), default=0)
    height = PAD * 2 + rows * NODE_H + max(rows - 1, 0) * ROW_GAP
    width = PAD * 2 + len(lineage.columns) * NODE_W + max(len(lineage.columns) - 1, 0) * COL_GAP
    where: dict[str, tuple[int, int]] = {}
    for ci, column in enumerate(lineage.columns):
        column_height = len(column) * NODE_H + (len(column) - 1) * ROW_GAP
        top = PAD + (height - 2 * PAD - column_height) // 2
        for ri, node in enumerate(column):
            where[node.id] = (PAD + ci * (NODE_W + COL_GAP), top + ri * (NODE_H + ROW_GAP))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage-svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Artifact lineage">',
    ]
    for source, target in lineage.edges:
        if source not in where or target not in where:
            continue
        (x1, y1), (x2, y2) = where[source], where[target]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
        mid = (x1 + x2) // 2
        # Edges always enter their target from the left: the arrowhead is a fixed triangle
        # (no <marker>, which would need an id unique on the page).
        parts.append(
            f'<path class="lineage-edge" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 7},{y2}" fill="none" '
            f'stroke="#8896a6" stroke-width="1.3"/>'
            f'<polygon points="{x2 - 8},{y2 - 4} {x2},{y2} {x2 - 8},{y2 + 4}" fill="#8896a6"/>'
        )
    for column in lineage.columns:
        for node in column:
            x, y = where[node.id]
            if node.kind == "task":
                fill = STATE_FILL.get(node.state, "#ffffff")
                stroke = STATE_STROKE.get(node.state, "#7b8794")
                radius = 6
            else:
                fill = FOCUS_FILL if node.focus else ARTIFACT_FILL
                stroke = ARTIFACT_STROKE
                radius = NODE_H // 2
            parts.append(
                f'<a href="{escape(node.href)}" class="lineage-node lineage-{node.kind}" '
                f'data-node="{escape(node.id)}"><title>{escape(node.label)} ({escape(node.sublabel)})</title>'
                f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="{radius}" fill="{fill}" '
                f'stroke="{stroke}" stroke-width="{2.6 if node.focus else 1.3}"/>'
                f'<text x="{x + NODE_W // 2}" y="{y + 18}" text-anchor="middle" font-size="12" '
                f'font-weight="600" fill="#1f2933">{escape(_clip(node.label))}</text>'
                f'<text x="{x + NODE_W // 2}" y="{y + 34}" text-anchor="middle" font-size="10.5" '
                f'fill="#52606d">{escape(_clip(node.sublabel))}</text></a>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
