"""Glue from stored specs to the pure packages' views of them."""

from __future__ import annotations

from typing import Any

from apps.core.choices import PipelineFormat
from apps.engine.graph import Graph


def graph_for_spec(fmt: str, spec: dict[str, Any], platform_spec: dict[str, Any] | None = None) -> Graph:
    """Build the drawable graph of a stored spec, whatever its format."""
    if fmt == PipelineFormat.ARGO:
        from apps.importers.argo import argo_graph

        return argo_graph(spec)
    from apps.engine.graph import graph_from_ir
    from apps.engine.spec import parse_pipeline_spec

    return graph_from_ir(parse_pipeline_spec(spec, platform_spec))
