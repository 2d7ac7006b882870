"""Glue from stored specs to the pure packages' views of them."""

from __future__ import annotations

from typing import Any

from apps.core.choices import PipelineFormat
from apps.engine.graph import Graph, graph_from_ir
from apps.engine.spec import parse_pipeline_spec
from apps.importers import argo_graph


def graph_for_spec(fmt: str, spec: dict[str, Any], platform_spec: dict[str, Any] | None = None) -> Graph:
    """Build the drawable graph of a stored spec, whatever its format."""
    if fmt == PipelineFormat.ARGO:
        return argo_graph(spec)
    return graph_from_ir(parse_pipeline_spec(spec, platform_spec))
