"""Drawing a graph: what each node says about itself (state glyph, condition, kind)."""

from __future__ import annotations

from html import unescape

import yaml

from apps.core.graphviz_svg import render_graph_svg
from apps.engine.graph import Graph, GraphNode
from apps.importers import argo_graph
from apps.runs.selectors import RunGraph
from tests.paths import ARGO_EXAMPLES


def test_an_argo_steps_when_is_its_condition_label() -> None:
    workflow = yaml.safe_load((ARGO_EXAMPLES / "coinflip.yaml").read_text())
    graph = argo_graph(workflow)
    whens = [n for n in graph.nodes if n.detail.get("when")]
    assert whens
    svg = unescape(render_graph_svg(graph).svg)
    for node in whens:
        assert f"if {node.detail['when']}" in svg


def test_labels_and_tooltips_stay_text() -> None:
    graph = Graph(
        nodes=[
            GraphNode(id="root/a", label="<b>x</b>", kind="container"),
            GraphNode(id="root/b", label='b\\n"', kind="exit"),
        ]
    )
    drawing = render_graph_svg(graph, states={"root/a": "FAILED"}, link=lambda n: f"?node={n}&x=<y>")
    assert "<b>" not in drawing.svg and "&lt;b&gt;" in drawing.svg
    assert "✗ " in drawing.svg and "failed" in drawing.svg
    assert "exit handler" in drawing.svg
    # dot does not escape an href: the renderer must, or a link could break out of it.
    assert "<y>" not in drawing.svg and "&x" not in drawing.svg and "%3Cy%3E" in drawing.svg


def _row(key: str, state: str, kind: str = "CONTAINER") -> dict[str, object]:
    return {"key": key, "kind": kind, "state": state, "cached_from_id": None, "iteration_count": None}


def test_rowless_nodes_of_a_finished_run_are_skipped_but_layout_groups_follow_their_steps() -> None:
    graph = Graph(
        nodes=[
            GraphNode(id="root/step 1", label="step 1", kind="dag"),  # drawn only to group steps
            GraphNode(id="root/step 1/a", label="a", kind="container", parent="root/step 1"),
            GraphNode(id="root/step 1/b", label="b", kind="container", parent="root/step 1"),
            GraphNode(id="root/c", label="c", kind="container"),
        ]
    )
    rows = [
        _row("root", "SUCCEEDED", "ROOT"),
        _row("root/step 1/a", "SUCCEEDED"),
        _row("root/step 1/b", "FAILED"),
    ]
    running = RunGraph(graph, rows, finished=False)
    assert running.states["root/step 1"] == "FAILED"
    assert running.states["root/c"] == "PENDING"  # not started yet: it still may
    done = RunGraph(graph, rows, finished=True)
    assert done.states["root/step 1"] == "FAILED"
    assert done.states["root/c"] == "SKIPPED"  # it never will
