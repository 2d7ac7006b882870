"""A format-neutral picture of a pipeline's DAG, for drawing.

Importers and the engine build it (from KFP IR or an Argo Workflow); the web UI
renders it with graphviz. Groups (sub-DAGs, loops, condition branches) are nodes
too: a node's ``parent`` names the group it sits in, so a renderer can draw groups
as clusters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GraphNode:
    """One node: a step, or a group that contains other nodes."""

    id: str
    label: str
    kind: str  # "container" | "importer" | "dag" | "loop" | "condition" | "exit" | "root"
    parent: str | None = None
    component: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphEdge:
    """A dependency: ``target`` runs after ``source``."""

    source: str
    target: str
    label: str = ""


@dataclass
class Graph:
    """Nodes and edges; edges may point at group nodes."""

    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)

    def node(self, node_id: str) -> GraphNode | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def children(self, parent: str | None) -> list[GraphNode]:
        return [n for n in self.nodes if n.parent == parent]
