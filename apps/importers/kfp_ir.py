"""KFP v2 IR (PipelineSpec + optional PlatformSpec): structural and semantic validation.

Structure is checked here with our own JSON schema (``schemas/kfp-pipeline-spec.schema.json``);
semantics (component/executor/producer references, cycles, CEL syntax) belong to the
engine's ``apps.engine.spec.parse_pipeline_spec``, whose ``SpecError`` is translated
into a ``PipelineImportError`` carrying the line the path points at.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from apps.engine.graph import Graph, graph_from_ir
from apps.engine.spec import PipelineSpec, SpecError, parse_pipeline_spec

from .errors import PathPart, PipelineImportError
from .limits import ImportLimits
from .schema_check import Locate, load_schema, make_validator, schema_error

# Top-level PipelineSpec fields; any of them marks a mapping as KFP IR. Not
# schemaVersion alone: Grafana dashboards have one too.
IR_MARKERS = frozenset({"pipelineInfo", "root", "components", "deploymentSpec"})


@functools.cache
def _ir_validator() -> Any:
    return make_validator(load_schema("kfp-pipeline-spec.schema.json"))


@functools.cache
def _platform_validator() -> Any:
    return make_validator(load_schema("kfp-platform-spec.schema.json"))


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
        # Checked before the schema: validating 10k tasks would itself take seconds.
        where = locate_ir(("root",)) if locate_ir else None
        raise PipelineImportError(
            f"the pipeline has {tasks:,} tasks; at most {limits.max_tasks:,} are allowed",
            filename=filename,
            field_path="root",
            line=where[0] if where else None,
        )
    error = schema_error(_ir_validator(), ir, filename=filename, locate=locate_ir)
    if error is not None:
        raise error
    if platform_spec is not None:
        error = schema_error(_platform_validator(), platform_spec, filename=filename, locate=locate_platform)
        if error is not None:
            raise error
    return check_semantics(
        ir, platform_spec, filename=filename, locate_ir=locate_ir, locate_platform=locate_platform
    )


def check_semantics(
    ir: dict[str, Any],
    platform_spec: dict[str, Any] | None,
    *,
    filename: str | None,
    locate_ir: Locate | None,
    locate_platform: Locate | None,
) -> PipelineSpec:
    """Run the engine's parser (references, cycles, CEL) and translate its SpecError."""
    try:
        return parse_pipeline_spec(ir, platform_spec)
    except SpecError as exc:
        path: tuple[PathPart, ...] = tuple(exc.path)
        # The engine reports platform-spec problems with paths into that document,
        # which always start at its only top-level key.
        in_platform = bool(path) and path[0] == "platforms" and platform_spec is not None
        locate = locate_platform if in_platform else locate_ir
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
