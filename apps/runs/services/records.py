"""Conversions between Task rows and the engine's records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.engine.model import ArtifactRef, NodeIO, NodeRecord
from apps.engine.serialize import to_jsonable
from apps.runs.models import Run, Task

RECORD_FIELDS = (
    "id",
    "key",
    "kind",
    "state",
    "inputs",
    "outputs",
    "error",
    "iteration_index",
    "iteration_count",
    "state_history",
)


def io_to_json(io: NodeIO) -> dict[str, Any]:
    """A NodeIO as stored in Task.inputs / Task.outputs."""
    data: dict[str, Any] = {}
    if io.parameters:
        data["parameters"] = to_jsonable(io.parameters)
    if io.artifacts:
        data["artifacts"] = {name: [to_jsonable(ref) for ref in refs] for name, refs in io.artifacts.items()}
    return data


def io_from_json(data: Mapping[str, Any] | None) -> NodeIO:
    """The stored JSON back into a NodeIO."""
    if not data:
        return NodeIO()
    artifacts = {
        name: [
            ArtifactRef(
                id=str(ref.get("id", "")),
                name=str(ref.get("name", name)),
                uri=str(ref.get("uri", "")),
                schema_title=str(ref.get("schema_title", "system.Artifact")),
                schema_version=str(ref.get("schema_version", "0.0.1")),
                metadata=ref.get("metadata") or {},
            )
            for ref in refs
        ]
        for name, refs in (data.get("artifacts") or {}).items()
    }
    return NodeIO(dict(data.get("parameters") or {}), artifacts)


def record_from_row(row: Mapping[str, Any]) -> NodeRecord:
    """One Task row (as a values() dict) as an engine record."""
    return NodeRecord(
        key=row["key"],
        kind=row["kind"],
        state=row["state"],
        inputs=io_from_json(row["inputs"]),
        outputs=io_from_json(row["outputs"]),
        error=row["error"] or None,
        iteration_index=row["iteration_index"],
        iteration_count=row["iteration_count"],
    )


def load_rows(run: Run | Any) -> list[dict[str, Any]]:
    """The run's task rows, only the columns the engine needs."""
    run_id = run.pk if isinstance(run, Run) else run
    return list(Task.objects.filter(run_id=run_id).values(*RECORD_FIELDS))


def load_records(run: Run | Any) -> list[NodeRecord]:
    """The run's tasks as engine records."""
    return [record_from_row(row) for row in load_rows(run)]
