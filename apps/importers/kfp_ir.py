"""KFP v2 IR (PipelineSpec + optional PlatformSpec): validation with line numbers.

The engine's ``apps.engine.spec.parse_pipeline_spec`` does all of it: structure through
KFP's own protobuf messages (kfp-pipeline-spec), then references, cycles and CEL. Its
``SpecError`` is translated here into a ``PipelineImportError`` carrying the line its path
points at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.engine.graph import Graph, graph_from_ir
from apps.engine.spec import PipelineSpec, SpecError, parse_pipeline_spec

from .errors import PathPart, PipelineImportError
from .limits import ImportLimits
from .schema_check import Locate

# Top-level PipelineSpec fields; any of them marks a mapping as KFP IR. Not
# schemaVersion alone: Grafana dashboards have one too.
IR_MARKERS = frozenset({"pipelineInfo", "root", "components", "deploymentSpec"})


def looks_like_ir(doc: Mapping[str, Any]) -> bool:
    """True if a top-level mapping is meant to be a KFP PipelineSpec."""
    return any(key in doc for key in IR_MARKERS)


def looks_like_platform_spec(doc: Any) -> bool:
    """True for the PlatformSpec document (``platforms: {kubernetes: ...}``)."""
    return isinstance(doc, dict) and "platforms" in doc


def count_tasks(ir: Mapping[str, Any]) -> int:
    """Tasks across the root DAG and every component DAG (tolerant of malformed input)."""
    dags: list[Any] = []
    root = ir.get("root")
    if isinstance(root, dict):
        dags.append(root.get("dag"))
    components = ir.get("components")
    if isinstance(components, dict):
        dags.extend(c.get("dag") for c in components.values() if isinstance(c, dict))
    total = 0
    for dag in dags:
        if isinstance(dag, dict) and isinstance(dag.get("tasks"), dict):
            total += len(dag["tasks"])
    return total


def validate_ir(
    ir: dict[str, Any],
    platform_spec: dict[str, Any] | None,
    *,
    filename: str | None,
    locate_ir: Locate | None,
    locate_platform: Locate | None,
    limits: ImportLimits,
) -> PipelineSpec:
    """The engine's typed spec, or PipelineImportError unless the IR (and platform spec) can run."""
    tasks = count_tasks(ir)
    if tasks > limits.max_tasks:
        # Checked before parsing: a 10k-task file is refused without building it.
        where = locate_ir(("root",)) if locate_ir else None
        raise PipelineImportError(
            f"the pipeline has {tasks:,} tasks; at most {limits.max_tasks:,} are allowed",
            filename=filename,
            field_path="root",
            line=where[0] if where else None,
        )
    try:
        return parse_pipeline_spec(ir, platform_spec)
    except SpecError as exc:
        path: tuple[PathPart, ...] = tuple(exc.path)
        locate = locate_platform if exc.in_platform_spec else locate_ir
        where = locate(path) if locate else None
        raise PipelineImportError(
            exc.message,
            filename=filename,
            field_path=path,
            line=where[0] if where else None,
        ) from None


def ir_graph(spec: PipelineSpec) -> Graph:
    """The engine's drawing of the parsed pipeline."""
    return graph_from_ir(spec)
