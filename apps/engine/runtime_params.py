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

from apps.engine.untrusted import InputError, check_json, check_text, loads_json

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
        super().__init__("; ".join(f"{_printable(name)}: {msg}" for name, msg in self.errors.items()))


def _printable(name: str) -> str:
    # An unknown parameter's name is the caller's text: escape what UTF-8 cannot carry.
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class ParameterSpec:
    """A root input parameter as the new-run form and validation see it."""

    name: str
    type: str
    default: Any
    has_default: bool
    optional: bool
    description: str
    choices: tuple[str, ...] = ()  # Argo's ``enum``: the only values allowed

    @property
    def required(self) -> bool:
        return not self.has_default and not self.optional


ARGO_KINDS = frozenset({"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate"})


def is_argo_workflow(spec: Mapping[str, Any]) -> bool:
    """Whether ``spec`` is an Argo resource (its parameters live in ``spec.arguments``)."""
    return spec.get("kind") in ARGO_KINDS and str(spec.get("apiVersion", "")).startswith("argoproj.io/")


def _argo_parameters(workflow: Mapping[str, Any]) -> list[ParameterSpec]:
    # Argo parameters are strings; one without a value must be given at submission.
    spec = workflow.get("spec") or {}
    arguments = spec.get("arguments") or {} if isinstance(spec, Mapping) else {}
    out = []
    for item in arguments.get("parameters") or [] if isinstance(arguments, Mapping) else []:
        if not isinstance(item, Mapping) or not item.get("name"):
            continue
        # A value from a ConfigMap (valueFrom) is supplied by the cluster, not the user.
        has_value = item.get("value") is not None or bool(item.get("valueFrom"))
        enum = item.get("enum") or ()
        out.append(
            ParameterSpec(
                name=str(item["name"]),
                type="STRING",
                default=str(item["value"]) if item.get("value") is not None else None,
                has_default=has_value,
                optional=False,
                description=str(item.get("description") or ""),
                choices=tuple(str(v) for v in enum) if isinstance(enum, list) else (),
            )
        )
    return out


def root_parameters(pipeline_spec: Mapping[str, Any]) -> list[ParameterSpec]:
    """The pipeline's root input parameters, in declaration order (KFP IR's root
    ``inputDefinitions``, or an Argo Workflow's ``spec.arguments.parameters``)."""
    if is_argo_workflow(pipeline_spec):
        return _argo_parameters(pipeline_spec)
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


# The one vocabulary for parameter types on every page (pipeline preview, run form, run
# page, task panel): KFP IR's NUMBER_INTEGER is shown as "integer", and so on.
TYPE_LABELS = {
    **dict.fromkeys(INT_TYPES, "integer"),
    **dict.fromkeys(DOUBLE_TYPES, "float"),
    **dict.fromkeys(BOOL_TYPES, "boolean"),
    **dict.fromkeys(LIST_TYPES, "list"),
    **dict.fromkeys(STRUCT_TYPES, "struct"),
    **dict.fromkeys(STRING_TYPES, "string"),
}


def type_label(ptype: str | None) -> str:
    """A parameter type as people read it: ``NUMBER_INTEGER`` → ``integer``; an unknown
    type in lower case; ``""`` for none."""
    if not ptype:
        return ""
    return TYPE_LABELS.get(str(ptype), str(ptype).lower())


def tidy_numbers(value: Any) -> Any:
    """``value`` with every integral float made an int, recursively: the SDK writes a
    ``List[int]`` default ``[1, 2]`` as ``[1.0, 2.0]`` (protobuf numbers are doubles),
    and KFP itself sends it to the step as ``[1, 2]``. Booleans are left alone."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, list):
        return [tidy_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: tidy_numbers(v) for k, v in value.items()}
    return value


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
TYPE_WORDS = {
    **dict.fromkeys(INT_TYPES, "an integer"),
    **dict.fromkeys(DOUBLE_TYPES, "a number"),
    **dict.fromkeys(BOOL_TYPES, "true or false"),
    **dict.fromkeys(LIST_TYPES, "a JSON list"),
    **dict.fromkeys(STRUCT_TYPES, "a JSON object"),
}


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expects an integer, got {json.dumps(value)}")
    result: int | None = None
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str):
        try:
            result = int(value.strip())
        except ValueError:
            try:
                as_float = float(value.strip())
            except ValueError:
                as_float = math.nan
            if as_float.is_integer():
                result = int(as_float)
    if result is None:
        raise ValueError(f"expects an integer, got {_show(value)}")
    if not INT64_MIN <= result <= INT64_MAX:
        raise ValueError(f"expects an integer that fits in 64 bits, got {_show(value)}")
    return result


def _double(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expects a number, got {json.dumps(value)}")
    result: float | None = None
    try:
        if isinstance(value, int | float):
            result = float(value)
        elif isinstance(value, str):
            result = float(value.strip())
    except (ValueError, OverflowError):  # OverflowError: an int beyond the float range
        result = None
    if result is None or not math.isfinite(result):
        raise ValueError(f"expects a finite number, got {_show(value)}")
    return result


def _coerce(value: Any, ptype: str) -> Any:
    """``value`` as the declared type. Strings (the web form, the kfp CLI's k=v) are
    parsed for every type; other JSON values must already have the declared type, as
    KFP's driver requires (a number or null is not a STRING)."""
    if value is None:
        what = TYPE_WORDS.get(ptype, "a string")
        raise ValueError(f"expects {what}, got null (leave the parameter out to use its default)")
    if isinstance(value, str):
        check_text(value)
    if ptype in INT_TYPES:
        return _integer(value)
    if ptype in DOUBLE_TYPES:
        return _double(value)
    if ptype in BOOL_TYPES:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        raise ValueError(f"expects true or false, got {_show(value)}")
    if ptype in LIST_TYPES or ptype in STRUCT_TYPES:
        want = list if ptype in LIST_TYPES else dict
        what = TYPE_WORDS[ptype]
        try:
            if isinstance(value, str):
                value = loads_json(value)
            else:
                check_json(value)
        except InputError as exc:
            problem = exc.message
            if problem.startswith("not valid JSON"):
                problem = f"the text is {problem}"
            where = f"at {exc.field}: " if exc.path else ""
            raise ValueError(f"expects {what}; {where}{problem}") from None
        if not isinstance(value, want):
            raise ValueError(f"expects {what}, got {_show(value)}")
        return value
    # STRING (and any type KFP adds later): text only. KFP's driver refuses a number
    # for a STRING input too; quote it ("5") to pass it as text.
    if isinstance(value, str):
        return value
    raise ValueError(f"expects a string, got {_show(value)}")


def _show(value: Any) -> str:
    # repr() and json.dumps escape what could not be encoded (a surrogate in a key, say).
    try:
        text = json.dumps(value) if not isinstance(value, str) else repr(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
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
        try:
            out[name] = _coerce(value, spec.type)
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        if spec.choices and out[name] not in spec.choices:
            errors[name] = f"must be one of {', '.join(spec.choices)} (the parameter's enum)"
    for name, spec in specs.items():
        if spec.required and name not in given and name not in errors:
            errors[name] = "is required (it has no default)"
    if errors:
        raise ParameterError(errors)
    return out
