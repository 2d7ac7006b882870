"""Draw an ``apps.engine.graph.Graph`` as inline SVG with graphviz's ``dot``.

Groups (sub-DAGs, loops, condition branches) become clusters. Every user-supplied
string goes through ``graphviz.escape`` (so a label can't become an HTML-like
label or a DOT escape), and dot writes text into SVG as escaped XML. Nodes get
stable ids ``node-<n>`` and a ``data-key``-style mapping is returned alongside, so
the page's script can open the clicked node's panel.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

import graphviz

from apps.core.text import without_surrogates
from apps.engine.graph import Graph, GraphNode

STATE_FILL = {
    "PENDING": "#eef1f5",
    "RUNNING": "#d6e8ff",
    "SUCCEEDED": "#d4f4dd",
    "CACHED": "#e3f6f9",
    "SKIPPED": "#f4f4f4",
    "FAILED": "#fde0e0",
    "CANCELING": "#fff1d6",
    "CANCELED": "#ffe9cc",
    "PAUSED": "#eee3ff",
}
STATE_STROKE = {
    "PENDING": "#9aa5b1",
    "RUNNING": "#2f7de1",
    "SUCCEEDED": "#1f9d55",
    "CACHED": "#1b98a8",
    "SKIPPED": "#b8b8b8",
    "FAILED": "#d64545",
    "CANCELING": "#e5a00d",
    "CANCELED": "#e07b00",
    "PAUSED": "#7d4fd6",
}
# Not colour alone: every node with a state also shows its glyph, and says it in its tooltip.
STATE_GLYPH = {
    "PENDING": "○",
    "RUNNING": "◔",
    "SUCCEEDED": "✓",
    "CACHED": "⟲",
    "SKIPPED": "↷",
    "FAILED": "✗",
    "CANCELING": "◌",
    "CANCELED": "⊘",
    "PAUSED": "‖",
}
STATE_WORD = {
    "PENDING": "pending",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "CACHED": "cached",
    "SKIPPED": "skipped (did not run)",
    "FAILED": "failed",
    "CANCELING": "canceling",
    "CANCELED": "canceled",
    "PAUSED": "paused",
}
KIND_SHAPE = {"importer": "cds", "exit": "box", "container": "box", "artifact": "note"}
KIND_WORD = {"exit": "exit handler", "artifact": "artifact", "importer": "importer"}
# Bumped whenever the drawing changes, so cached SVGs of an older drawing are not served.
DRAWING_VERSION = "2"
GROUP_KINDS = {"dag", "loop", "condition", "root"}
_PROLOG = re.compile(r"^.*?(?=<svg)", re.DOTALL)
MAX_LABEL = 60
MAX_TOOLTIP = 300
EMPTY_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"></svg>'


@dataclass(frozen=True)
class RenderedGraph:
    """SVG markup plus the mapping from SVG element ids to graph node ids."""

    svg: str
    element_ids: dict[str, str]


def _label(text: str) -> str:
    text = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
    # escape() returns a NoHtml string: kept as such, a label like "<b>x</b>" stays text
    # instead of being read by the graphviz library as an HTML-like label.
    escaped: str = graphviz.escape(text)  # a NoHtml, a str subclass (graphviz has no types)
    return escaped


def _tooltip(text: str) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= MAX_TOOLTIP else text[: MAX_TOOLTIP - 1] + "…"
    escaped: str = graphviz.escape(text)  # a NoHtml, a str subclass (graphviz has no types)
    return escaped


def _href(url: str) -> str:
    # dot copies an href into the SVG unescaped (and reads backslashes as its own escapes):
    # percent-encode everything that could end the attribute or start an entity or escape.
    # ("&" too: links carry one query parameter.)
    return quote(url, safe="/?=#%-._~:,;+")


def _branches(count: object) -> str:
    """``if / else`` for a group of two exclusive branches, ``if / elif / else`` for more."""
    if not isinstance(count, int) or count < 2:
        return ""
    return "if / else (one branch runs)" if count == 2 else "if / elif / else (one branch runs)"


def _lines(*lines: str) -> str:
    # Each line is escaped on its own; "\\n" (dot's centred line break) joins them.
    joined: str = graphviz.nohtml("\\n".join(_label(line) for line in lines if line))  # NoHtml
    return joined


def render_graph_svg(
    graph: Graph,
    *,
    states: Mapping[str, str] | None = None,
    badges: Mapping[str, str] | None = None,
    link: Callable[[str], str] | None = None,
    timeout: float = 20.0,
) -> RenderedGraph:
    """Lay out ``graph`` with dot; colour nodes by ``states`` (node id → state name) and
    prefix their labels with the state's glyph; ``badges`` adds a label line (e.g. a
    collapsed loop's "3 running · 5 waiting · 2 done"). ``link`` gives each node an
    ``href`` (a real link: keyboard-focusable, and it works without JavaScript)."""
    states = states or {}
    badges = badges or {}
    dot = graphviz.Digraph(
        "canal",
        graph_attr={
            "rankdir": "TB",
            "compound": "true",
            "fontname": "Helvetica",
            "fontsize": "11",
            "bgcolor": "transparent",
            "nodesep": "0.35",
            "ranksep": "0.45",
        },
        node_attr={
            "fontname": "Helvetica",
            "fontsize": "11",
            "style": "rounded,filled",
            "shape": "box",
            "penwidth": "1.4",
            "margin": "0.15,0.06",
        },
        edge_attr={"color": "#8896a6", "arrowsize": "0.7", "fontname": "Helvetica", "fontsize": "9"},
    )
    element_ids: dict[str, str] = {}
    dot_ids: dict[str, str] = {}
    anchors: dict[str, str] = {}  # group id -> invisible point inside its cluster
    children: dict[str | None, list[GraphNode]] = {}
    for node in graph.nodes:
        children.setdefault(node.parent, []).append(node)
    for index, node in enumerate(graph.nodes):
        dot_ids[node.id] = f"n{index}"
        element_ids[f"node-{index}"] = node.id

    def is_group(node: GraphNode) -> bool:
        return node.kind in GROUP_KINDS and bool(children.get(node.id))

    def add(container: graphviz.Digraph, node: GraphNode) -> None:
        state = states.get(node.id, "")
        fill = STATE_FILL.get(state, "#ffffff")
        stroke = STATE_STROKE.get(state, "#7b8794")
        dot_id = dot_ids[node.id]
        element_id = f"node-{dot_id[1:]}"
        glyph = STATE_GLYPH.get(state, "")
        title = f"{glyph} {node.label}" if glyph else node.label
        # KFP: a condition group's CEL expression; Argo: a step's ``when``.
        condition = str(
            node.detail.get("condition_text") or node.detail.get("condition") or node.detail.get("when") or ""
        )
        kind_word = KIND_WORD.get(node.kind, "")
        label = _lines(
            title,
            f"if {condition}" if condition else "",
            _branches(node.detail.get("branches")),
            "exit handler" if node.kind == "exit" else "",
            badges.get(node.id, ""),
        )
        tip = node.label
        if kind_word:
            tip = f"{kind_word}: {tip}"
        if condition:
            tip += f" (runs if {condition})"
        if node.kind == "artifact" and node.detail.get("type"):
            tip += f" ({node.detail['type']})"
        if state:
            tip += f" — {STATE_WORD.get(state, state.lower())}"
        if node.id in badges:
            tip += f" — {badges[node.id]}"
        extra: dict[str, str] = {"tooltip": _tooltip(tip)}
        if link is not None:
            extra["href"] = _href(link(node.id))
        if is_group(node):
            with container.subgraph(name=f"cluster_{dot_id}") as sub:
                sub.attr(
                    label=label,
                    id=element_id,
                    style="rounded,dashed",
                    color=stroke,
                    fontcolor="#3e4c59",
                    **{"class": f"group kind-{node.kind} state-{state or 'none'}"},
                    **extra,
                )
                anchor = f"{dot_id}_anchor"
                sub.node(anchor, label="", shape="point", style="invis", width="0", height="0")
                anchors[node.id] = anchor
                for child in children.get(node.id, []):
                    add(sub, child)
        else:
            if node.kind == "exit":  # runs whatever happened: drawn apart from ordinary steps
                extra.update(style="filled,bold,diagonals", penwidth="2")
            elif node.kind == "artifact":
                extra.update(fontsize="9", margin="0.08,0.03", height="0.3", penwidth="1")
                if not state:
                    fill = "#fffbea"
            container.node(
                dot_id,
                label=label,
                id=element_id,
                shape=KIND_SHAPE.get(node.kind, "box"),
                fillcolor=fill,
                color=stroke,
                peripheries="2" if node.kind in GROUP_KINDS else "1",
                **{"class": f"task state-{state or 'none'} kind-{node.kind}"},
                **extra,
            )

    for node in children.get(None, []):
        add(dot, node)
    for edge in graph.edges:
        if edge.source not in dot_ids or edge.target not in dot_ids:
            continue
        attrs: dict[str, str] = {}
        src = anchors.get(edge.source) or dot_ids[edge.source]
        dst = anchors.get(edge.target) or dot_ids[edge.target]
        if edge.source in anchors:
            attrs["ltail"] = f"cluster_{dot_ids[edge.source]}"
        if edge.target in anchors:
            attrs["lhead"] = f"cluster_{dot_ids[edge.target]}"
        if edge.label:
            attrs["label"] = _label(edge.label)
        dot.edge(src, dst, **attrs)
    if not graph.nodes:
        return RenderedGraph(svg=EMPTY_SVG, element_ids={})
    return RenderedGraph(svg=_run_dot(dot.source, timeout=timeout), element_ids=element_ids)


class GraphRenderError(RuntimeError):
    """dot is missing, failed, or took too long."""


def _run_dot(source: str, *, timeout: float) -> str:
    # Called directly (not Digraph.pipe) so that a pathological layout is bounded by a timeout.
    try:
        done = subprocess.run(
            # A stored spec may name a task with a lone surrogate, which UTF-8 cannot encode.
            ["dot", "-Tsvg"],
            input=without_surrogates(source).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise GraphRenderError("graphviz's `dot` is not installed (apt-get install graphviz)") from exc
    except subprocess.TimeoutExpired as exc:
        raise GraphRenderError(f"laying out the graph took more than {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise GraphRenderError(f"dot failed: {done.stderr.decode(errors='replace')[:500]}")
    return _PROLOG.sub("", done.stdout.decode("utf-8"), count=1)
