"""JSON-schema validation that reports one precise, readable error with its path and line."""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

from apps.engine.protojson import describe_value

from .errors import Path, PathPart, PipelineImportError

# A broken file can produce thousands of errors; the first few hundred are
# plenty to find the earliest one.
_MAX_ERRORS = 200

_JSON_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}

Locate = Callable[[Sequence[PathPart]], "tuple[int, int] | None"]


def load_schema(name: str) -> dict[str, Any]:
    """Read a JSON schema shipped in ``apps/importers/schemas``."""
    text = resources.files(__package__).joinpath("schemas", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def make_validator(schema: dict[str, Any]) -> Any:
    """A Draft 2020-12 validator for one of our shipped schemas.

    The schemas are meta-validated by the test suite, not here: checking Argo's
    600 KB schema costs a second per process. jsonschema is imported here, when an Argo
    Workflow is first validated, not by every process that imports the importers
    (about 60 ms of a ``manage.py`` command's start).
    """
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema)


def _leaf(error: ValidationError) -> ValidationError:
    """Descend into oneOf/anyOf sub-errors."""
    from jsonschema.exceptions import best_match

    while error.context:
        error = best_match(error.context)
    return error


def _unknown_keys(error: ValidationError) -> list[str]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    instance = error.instance if isinstance(error.instance, dict) else {}
    return [str(k) for k in instance if k not in known and not any(re.search(p, str(k)) for p in patterns)]


def describe_error(error: ValidationError) -> tuple[Path, str]:
    """The field path and a plain-English message for one jsonschema error."""
    path: Path = tuple(error.absolute_path)
    kind = error.validator
    value = error.validator_value
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}

    if kind == "additionalProperties":
        unknown = _unknown_keys(error)
        key = unknown[0] if unknown else "?"
        known = sorted(schema.get("properties", {}))
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            hint = f" (did you mean '{close[0]}'?)"
        elif known and len(known) <= 12:
            hint = f"; allowed fields here: {', '.join(known)}"
        else:
            hint = ""
        return (*path, key), f"unknown field '{key}'{hint}"
    if kind == "required":
        present = instance if isinstance(instance, dict) else {}
        missing = next((r for r in value if r not in present), value[0] if value else "?")
        return path, f"missing required field '{missing}'"
    if kind == "type":
        wanted = value if isinstance(value, list) else [value]
        names = " or ".join(_JSON_TYPE_NAMES.get(str(t), str(t)) for t in wanted)
        return path, f"expected {names}, got {describe_value(instance)}"
    if kind == "enum":
        options = ", ".join(str(v) for v in value)
        return path, f"must be one of {options} (got {describe_value(instance)})"
    if kind == "const":
        return path, f"must be {value!r} (got {describe_value(instance)})"
    if kind == "minLength":
        if value == 1:
            return path, "must not be empty"
        return path, f"must be at least {value} characters long"
    if kind == "maxLength":
        return path, f"must be at most {value} characters long"
    if kind == "pattern":
        return path, f"{describe_value(instance)} does not match the pattern {value}"
    if kind in ("minItems", "minProperties"):
        return path, "must not be empty" if value == 1 else f"needs at least {value} entries"
    if kind in ("maxItems", "maxProperties"):
        return path, f"allows at most {value} entries"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return path, f"{describe_value(instance)} is out of range ({kind} {value})"
    if kind in ("oneOf", "anyOf"):
        return path, "does not match any of the allowed forms"
    if kind == "not":
        return path, "uses a combination of fields that is not allowed"
    return path, str(error.message)


def schema_error(
    validator: Any, instance: Any, *, filename: str | None, locate: Locate | None
) -> PipelineImportError | None:
    """Validate; return the earliest error in the document (deepest on ties), or None if valid.

    Reading order is what a person fixing the file follows, and the deepest of
    errors on the same line is the most specific one. A missing field is not
    reported when the same mapping has an unknown one: that is almost always
    the same field, misspelled, and the unknown-field message says so.
    """
    misspelled: set[Path] = set()
    found: list[tuple[ValidationError, Path, str]] = []
    for error in itertools.islice(validator.iter_errors(instance), _MAX_ERRORS):
        leaf = _leaf(error)
        path, message = describe_error(leaf)
        found.append((leaf, path, message))
        if leaf.validator == "additionalProperties":
            misspelled.add(tuple(leaf.absolute_path))
    candidates: list[tuple[tuple[float, float, int, int], Path, str]] = []
    for index, (leaf, path, message) in enumerate(found):
        if leaf.validator == "required" and path in misspelled:
            continue
        where = locate(path) if locate else None
        line, column = (float(where[0]), float(where[1])) if where else (float("inf"), float("inf"))
        candidates.append(((line, column, -len(path), index), path, message))
    if not candidates:
        return None
    _, path, message = min(candidates, key=lambda c: c[0])
    where = locate(path) if locate else None
    return PipelineImportError(
        message,
        filename=filename,
        field_path=path,
        line=where[0] if where else None,
    )
