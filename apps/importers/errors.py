"""The one exception importers raise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Paths and their text form are the engine's, so import errors and the
# engine's SpecError read the same: root.dag.tasks['train'].componentRef.name
from apps.engine.spec import Path, format_path

PathPart = str | int
__all__ = ["Path", "PathPart", "PipelineImportError", "format_path"]


class PipelineImportError(Exception):
    """A pipeline file or spec was refused; says what is wrong and where."""

    def __init__(
        self,
        message: str,
        *,
        filename: str | None = None,
        field_path: str | Sequence[PathPart] | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        if field_path is not None and not isinstance(field_path, str):
            field_path = format_path(tuple(field_path))
        self.message = message
        self.filename = filename
        self.field_path: str | None = field_path or None
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where: list[str] = []
        if self.filename:
            where.append(self.filename)
        if self.line is not None:
            # A column helps with syntax errors; with a field path it is noise.
            if self.column is not None and self.field_path is None:
                where.append(f"line {self.line}, column {self.column}")
            else:
                where.append(f"line {self.line}")
        if self.field_path:
            where.append(f"at {self.field_path}")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def __repr__(self) -> str:
        return f"PipelineImportError({str(self)!r})"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form for API error bodies."""
        return {
            "message": self.message,
            "filename": self.filename,
            "field_path": self.field_path,
            "line": self.line,
            "column": self.column,
            "detail": str(self),
        }
