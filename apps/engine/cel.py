"""CEL for ``triggerPolicy.condition`` and ``parameterExpressionSelector``, with cel-python.

KFP evaluates both with cel-go (``backend/src/v2/expression/expression.go``):

* a condition sees the task's ExecutorInput, so it reads
  ``inputs.parameter_values['pipelinechannel--x']``; it must return a bool;
* a selector sees the fields of the ``google.protobuf.Value`` being selected from:
  ``string_value`` always (the value as text, JSON for lists and structs) plus the one
  field that is set (``number_value``, ``bool_value``, ``struct_value``, ``list_value``,
  ``null_value``);
* both may call ``parseJson(string)``.

Two things differ from a bare cel-python environment and are fixed here so that Canal
behaves like cel-go (and unlike kfp.local, whose Python ``eval`` trips over ``double()``):

* numbers compare across int and double (``double(x) > 2.5``, ``x > 2`` with ``x`` a
  double, ``1 == 1.0``), as the CEL spec's heterogeneous numeric comparisons require;
* equality between values of different kinds is ``false`` rather than an error.

Canal passes integers as CEL ints (KFP would pass doubles); with cross-type comparisons
the result of every expression the SDK emits is the same.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, CELUnsupportedError

from apps.engine.values import format_float_g, is_number, value_to_text


class CelError(ValueError):
    """A CEL expression could not be parsed or evaluated."""


_NUMERIC = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)


def _plain_number(value: Any) -> int | float | None:
    if isinstance(value, celtypes.BoolType | bool):
        return None
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, _NUMERIC):
        return int(value)
    return None


def _compare(
    op: Callable[[Any, Any], bool], fallback: Callable[[Any, Any], Any]
) -> Callable[[Any, Any], Any]:
    def compare(left: Any, right: Any) -> Any:
        a, b = _plain_number(left), _plain_number(right)
        if a is not None and b is not None:
            # Python compares int and float exactly, which is what CEL specifies.
            return celtypes.BoolType(op(a, b))
        return fallback(left, right)

    return compare


def _equality(negate: bool) -> Callable[[Any, Any], Any]:
    base = celpy.evaluation.bool_ne if negate else celpy.evaluation.bool_eq

    def equal(left: Any, right: Any) -> Any:
        # An error operand (e.g. a missing map key) must stay an error, not become "false".
        if isinstance(left, CELEvalError):
            return left
        if isinstance(right, CELEvalError):
            return right
        a, b = _plain_number(left), _plain_number(right)
        if a is not None and b is not None:
            return celtypes.BoolType((a != b) if negate else (a == b))
        try:
            result = base(left, right)
        except TypeError:
            result = None
        if result is None or isinstance(result, CELEvalError):
            # Heterogeneous equality: values of different kinds are simply not equal.
            return celtypes.BoolType(negate)
        return result

    return equal


def _parse_json(text: Any) -> Any:
    if not isinstance(text, str):
        return CELEvalError("parseJson() needs a string", TypeError, (text,))
    try:
        return python_to_cel(json.loads(str(text)))
    except ValueError as exc:
        return CELEvalError(f"parseJson(): invalid JSON: {exc}", ValueError, (text,))


def _to_string(value: Any) -> Any:
    # cel-go prints doubles with %g ("3", not "3.0"); booleans as true/false.
    if isinstance(value, celtypes.BoolType):
        return celtypes.StringType("true" if value else "false")
    if isinstance(value, celtypes.DoubleType):
        return celtypes.StringType(format_float_g(float(value)))
    return celtypes.StringType(value)


_FUNCTIONS: dict[str, Any] = {
    "parseJson": _parse_json,
    "string": _to_string,
    "_<_": _compare(operator.lt, celpy.evaluation.bool_lt),
    "_<=_": _compare(operator.le, celpy.evaluation.bool_le),
    "_>_": _compare(operator.gt, celpy.evaluation.bool_gt),
    "_>=_": _compare(operator.ge, celpy.evaluation.bool_ge),
    "_==_": _equality(negate=False),
    "_!=_": _equality(negate=True),
}


@lru_cache(maxsize=1)
def cel_environment() -> celpy.Environment:
    """The CEL environment (one per process)."""
    # Built on first use, not at import: building CEL's parser takes about 0.2 s, which
    # every process (the CLI, each web worker) paid at start, CEL or not.
    return celpy.Environment()


@lru_cache(maxsize=1024)
def _program(expression: str) -> celpy.Runner:
    try:
        ast = cel_environment().compile(expression)
    except CELParseError as exc:
        column = getattr(exc, "column", None)
        where = f" at column {column}" if column else ""
        cause = exc.__context__
        detail = str(cause).strip().splitlines()[0] if cause is not None else "syntax error"
        raise CelError(f"{detail.rstrip('.')}{where if 'column' not in detail else ''}") from exc
    except lark.exceptions.LarkError as exc:
        raise CelError(str(exc).strip().splitlines()[0]) from exc
    return cel_environment().program(ast, functions=_FUNCTIONS)


def check_syntax(expression: str) -> None:
    """Raise CelError if ``expression`` is not syntactically valid CEL."""
    _program(expression)


def python_to_cel(value: Any) -> Any:
    """A JSON value as a CEL value (ints stay ints)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, list | tuple):
        return celtypes.ListType([python_to_cel(v) for v in value])
    if isinstance(value, dict):
        return celtypes.MapType({celtypes.StringType(str(k)): python_to_cel(v) for k, v in value.items()})
    raise CelError(f"{type(value).__name__} cannot be used in CEL")


def cel_to_python(value: Any) -> Any:
    """A CEL result as a plain JSON value."""
    if value is None:
        return None
    if isinstance(value, celtypes.BoolType | bool):
        return bool(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType | int):
        return int(value)
    if isinstance(value, float):
        return value
    if isinstance(value, celtypes.StringType | str):
        return str(value)
    if isinstance(value, celtypes.BytesType | bytes):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [cel_to_python(v) for v in value]
    if isinstance(value, dict):
        return {str(cel_to_python(k)): cel_to_python(v) for k, v in value.items()}
    return str(value)


def _evaluate(expression: str, activation: Mapping[str, Any]) -> Any:
    program = _program(expression)
    try:
        result = program.evaluate(dict(activation))
    except CELEvalError as exc:
        raise CelError(_describe(exc)) from exc
    except CELUnsupportedError as exc:
        raise CelError(f"unsupported CEL feature: {exc}") from exc
    except (TypeError, ValueError, KeyError, ZeroDivisionError) as exc:
        raise CelError(str(exc) or type(exc).__name__) from exc
    if isinstance(result, CELEvalError):
        raise CelError(_describe(result))
    return result


def _describe(error: CELEvalError) -> str:
    args = error.args
    message = str(args[0]) if args else "evaluation error"
    if message == "no such key" and len(args) > 2 and args[2]:
        return f"no such key: {args[2][0]!s}"
    return message


def evaluate_condition(
    expression: str,
    parameter_values: Mapping[str, Any],
    artifacts: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> bool:
    """Evaluate a ``triggerPolicy.condition`` against a task's resolved inputs."""
    inputs: dict[str, Any] = {"parameter_values": dict(parameter_values)}
    inputs["artifacts"] = {name: {"artifacts": list(items)} for name, items in (artifacts or {}).items()}
    result = _evaluate(expression, {"inputs": python_to_cel(inputs)})
    if not isinstance(result, celtypes.BoolType | bool):
        raise CelError(f"the condition returned {cel_to_python(result)!r}, not a boolean")
    return bool(result)


def select(value: Any, expression: str) -> Any:
    """Apply a ``parameterExpressionSelector`` to a parameter value."""
    fields: dict[str, Any] = {"string_value": celtypes.StringType(value_to_text(value))}
    if value is None:
        fields["null_value"] = None
    elif isinstance(value, bool):
        fields["bool_value"] = celtypes.BoolType(value)
    elif is_number(value):
        fields["number_value"] = python_to_cel(value)
    elif isinstance(value, list):
        fields["list_value"] = python_to_cel(value)
    elif isinstance(value, dict):
        fields["struct_value"] = python_to_cel(value)
    return cel_to_python(_evaluate(expression, fields))
