"""Check and coerce a run's runtime parameters against the pipeline's root inputs.

Values arrive as JSON (REST API, kfp client) or as strings (the web form, the kfp
CLI's ``k=v`` arguments). Each is coerced to the declared KFP parameter type, and
every problem is reported by parameter name, so nothing half-valid starts a run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INT_TYPES = {"NUMBER_INTEGER", "INT"}
DOUBLE_TYPES = {"NUMBER_DOUBLE", "DOUBLE"}
STRING_TYPES = {"STRING"}
BOOL_TYPES = {"BOOLEAN"}
LIST_TYPES = {"LIST"}
STRUCT_TYPES = {"STRUCT"}


class ParameterError(ValueError):
    """One or more runtime parameters are wrong; ``errors`` maps name → message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in self.errors.items()))


@dataclass(frozen=True)
class ParameterSpec:
    """A root input parameter as the new-run form and validation see it."""

    name: str
    type: str
    default: Any
    has_default: bool
    optional: bool
    description: str

    @property
    def required(self) -> bool:
        return not self.has_default and not self.optional


def root_parameters(pipeline_spec: Mapping[str, Any]) -> list[ParameterSpec]:
    """The pipeline's root input parameters, in declaration order."""
    root = pipeline_spec.get("root") or {}
    params = ((root.get("inputDefinitions") or {}).get("parameters")) or {}
    out = []
    for name, definition in params.items():
        definition = definition or {}
        ptype = definition.get("parameterType") or definition.get("type") or "STRING"
        out.append(
            ParameterSpec(
                name=name,
                type=str(ptype),
                default=definition.get("defaultValue"),
                has_default="defaultValue" in definition,
                optional=bool(definition.get("isOptional")),
                description=str(definition.get("description") or ""),
            )
        )
    return out


def _coerce(value: Any, ptype: str) -> Any:
    if ptype in INT_TYPES:
        if isinstance(value, bool):
            raise ValueError(f"expects an integer, got {json.dumps(value)}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
            try:
                as_float = float(value.strip())
            except ValueError:
                as_float = math.nan
            if as_float.is_integer():
                return int(as_float)
        raise ValueError(f"expects an integer, got {_show(value)}")
    if ptype in DOUBLE_TYPES:
        if isinstance(value, bool):
            raise ValueError(f"expects a number, got {json.dumps(value)}")
        if isinstance(value, int | float):
            return float(value) if isinstance(value, int) else value
        if isinstance(value, str):
            try:
                result = float(value.strip())
            except ValueError:
                raise ValueError(f"expects a number, got {_show(value)}") from None
            if math.isfinite(result):
                return result
        raise ValueError(f"expects a number, got {_show(value)}")
    if ptype in BOOL_TYPES:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        raise ValueError(f"expects true or false, got {_show(value)}")
    if ptype in LIST_TYPES or ptype in STRUCT_TYPES:
        want = list if ptype in LIST_TYPES else dict
        what = "a JSON list" if want is list else "a JSON object"
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"expects {what}; the text is not valid JSON ({exc.msg} at column {exc.colno})"
                ) from None
        if not isinstance(value, want):
            raise ValueError(f"expects {what}, got {_show(value)}")
        return value
    # STRING (and anything unknown): strings pass; scalars are written as KFP would print them.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    raise ValueError(f"expects a string, got {_show(value)}")


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def coerce_runtime_parameters(
    pipeline_spec: Mapping[str, Any], given: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Return the parameters coerced to their declared types, defaults left to the
    engine (so the run records what the user chose). Raises ParameterError naming
    every unknown, missing or mistyped parameter."""
    given = dict(given or {})
    specs = {p.name: p for p in root_parameters(pipeline_spec)}
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for name, value in given.items():
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(specs)) or "no parameters"
            errors[name] = f"unknown parameter; the pipeline takes: {known}"
            continue
        if value is None:
            if spec.required:
                errors[name] = "is required"
            continue
        try:
            out[name] = _coerce(value, spec.type)
        except ValueError as exc:
            errors[name] = str(exc)
    for name, spec in specs.items():
        if spec.required and name not in given and name not in errors:
            errors[name] = "is required (it has no default)"
    if errors:
        raise ParameterError(errors)
    return out
