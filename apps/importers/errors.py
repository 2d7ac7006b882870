"""The one exception importers raise, and the field-path formatting it uses."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

PathPart = str | int
Path = tuple[PathPart, ...]

# Keys made of these characters read unambiguously after a dot; anything else
# (dots in annotation keys, spaces, brackets) is quoted so the path stays parseable.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: Sequence[PathPart]) -> str | None:
    """Render ``("spec", "templates", 2, "name")`` as ``spec.templates[2].name``; ``()`` as None."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(str(part)):
            out.append(f".{part}" if out else str(part))
        else:
            out.append(f"[{str(part)!r}]")
    return "".join(out) or None


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
            field_path = format_path(field_path)
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
