"""Canal's driver for KFP pipelines on Argo: one self-contained, standard-library-only file.

The compiler (``apps.backends.argo.compiler``) ships this file's text inside every
Workflow it emits (a workflow parameter that each driver ``script`` template runs with
``python3``), so a driver pod needs nothing but a Python 3.10+ interpreter: no Canal
image, no access to Canal's source or database. It must therefore never import Canal.

A driver step runs before a task (or decides a group) and does what KFP's Go driver
does, from values Argo hands it as environment variables:

* ``CANAL_CONFIG``: the task's compile-time configuration (JSON);
* ``CANAL_L<n>``: "leaves", the raw values the task's inputs are made of: an upstream
  step's output parameter file or ``executor_output.json`` as Argo read them, a loop
  item, a task's Argo status, the output of another driver;

and writes its results as files that Argo reads as output parameters (``CANAL_OUT``,
default ``/tmp/canal/out``). Modes:

* ``task``: resolve a container task's inputs (types, defaults, selectors, f-string
  constants), evaluate its condition, compute its cache key, build the ExecutorInput
  and render every command-line element that holds a placeholder;
* ``importer``: resolve an importer's artifact (URI and metadata);
* ``gate``: evaluate the condition of a DAG task;
* ``iter``: evaluate a ParallelFor's condition and list its items;
* ``check``: fail when a task of a DAG failed (a DAG whose exit handler ran);
* ``pvc``: build the PersistentVolumeClaim a kfp-kubernetes CreatePVC/DeletePVC acts on.

The semantics copy Canal's engine (``apps/engine``: ``execution``, ``executor_io``,
``placeholders``, ``cel``, ``cache``, ``values``); ``tests/backends/argo`` checks this
file against those functions so the two cannot drift. CEL arrives already parsed (the
compiler parses it with cel-python and emits a small JSON syntax tree), so evaluating
it needs no parser here.

This file must not contain two opening braces in a row anywhere: Argo substitutes
such tags in the text it is given.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import uuid
from decimal import Decimal
from typing import Any

ABSENT = "__canal_absent__"  # the default of every output a skipped step never wrote
OB = "{" + "{"  # two opening braces, spelled so that this file never contains them
CB = "}" + "}"

DEFAULT_OUT_DIR = "/tmp/canal/out"  # noqa: S108 - a driver pod's own /tmp
_MAX_OUTPUT = 4 * 1024 * 1024


class InputError(ValueError):
    """The task's inputs cannot be resolved (the task fails with this message)."""


class OutputError(ValueError):
    """An upstream step finished but its outputs are missing or malformed."""


class CelError(ValueError):
    """A CEL expression could not be evaluated."""


# ---------------------------------------------------------------------------------------
# Values as KFP's Go backend prints them (apps/engine/values.py)
# ---------------------------------------------------------------------------------------

_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def is_number(value: Any) -> bool:
    """True for int or float, but not bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _special(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def format_float_f(value: float | int) -> str:
    """Go's ``strconv.FormatFloat(value, 'f', -1, 64)``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    special = _special(value)
    if special is not None:
        return special
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    return format(Decimal(repr(value)).normalize(), "f")


def _shortest_exponent(value: float) -> str:
    text = repr(value)
    if "e" not in text:
        mantissa, exp = f"{Decimal(text):e}".split("e")
        digits = Decimal(mantissa).normalize()
        text = f"{digits}e{int(exp):+03d}"
    return text


def format_float_g(value: float | int) -> str:
    """Go's ``%g`` (CEL's ``string(double)``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    special = _special(value)
    if special is not None:
        return special
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    exponent = Decimal(repr(value)).adjusted()
    if exponent < -4 or exponent >= 6:
        return _shortest_exponent(value)
    return format_float_f(value)


def _json_number(value: float | int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) < 10**21:
            return str(value)
        value = float(value)
    special = _special(value)
    if special is not None:
        raise ValueError(f"unsupported value: {special}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = _shortest_exponent(value)
        if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    return format_float_f(value)


def _json_string(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _HTML:
            out.append(_HTML[ch])
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json_dumps(value: Any) -> str:
    """Go's ``json.Marshal`` of a decoded JSON value: sorted keys, compact, HTML-escaped."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out.append(item.text)
        elif item is None:
            out.append("null")
        elif item is True:
            out.append("true")
        elif item is False:
            out.append("false")
        elif isinstance(item, str):
            out.append(_json_string(item))
        elif is_number(item):
            out.append(_json_number(item))
        elif isinstance(item, dict):
            parts: list[Any] = [_Raw("{")]
            for i, key in enumerate(sorted(item, key=str)):
                if i:
                    parts.append(_Raw(","))
                parts.append(_Raw(_json_string(str(key)) + ":"))
                parts.append(item[key])
            parts.append(_Raw("}"))
            stack.extend(reversed(parts))
        elif isinstance(item, list | tuple):
            parts = [_Raw("[")]
            for i, element in enumerate(item):
                if i:
                    parts.append(_Raw(","))
                parts.append(element)
            parts.append(_Raw("]"))
            stack.extend(reversed(parts))
        else:
            raise TypeError(f"{type(item).__name__} is not a JSON value")
    return "".join(out)


class _Raw:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def value_to_text(value: Any) -> str:
    """A parameter value as command-line text (KFP's ``PbValueToText``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return format_float_f(value)
    return go_json_dumps(value)


def json_type_name(value: Any) -> str:
    """The JSON kind of a value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "struct"
    return type(value).__name__


def normalize_parameter_value(value: Any, parameter_type: str) -> Any:
    """Integral floats become ints for NUMBER_INTEGER, ints floats for NUMBER_DOUBLE."""
    if parameter_type == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    if parameter_type == "NUMBER_DOUBLE" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# ---------------------------------------------------------------------------------------
# CEL over the compiler's JSON syntax tree (apps/engine/cel.py semantics)
# ---------------------------------------------------------------------------------------


def _num(value: Any) -> int | float | None:
    return value if is_number(value) else None


def _cel_equal(left: Any, right: Any) -> bool:
    a, b = _num(left), _num(right)
    if a is not None and b is not None:
        return a == b
    if type(left) is not type(right):
        if isinstance(left, list | tuple) and isinstance(right, list | tuple):
            pass
        else:
            return False
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(_cel_equal(x, y) for x, y in zip(left, right, strict=True))
    if isinstance(left, dict):
        return set(left) == set(right) and all(_cel_equal(left[k], right[k]) for k in left)
    return bool(left == right)


def _cel_compare(op: str, left: Any, right: Any) -> bool:
    a, b = _num(left), _num(right)
    if a is None or b is None:
        if isinstance(left, str) and isinstance(right, str):
            a2: Any = left
            b2: Any = right
        elif isinstance(left, bool) and isinstance(right, bool):
            a2, b2 = left, right
        else:
            raise CelError(f"no such overload: {json_type_name(left)} {op} {json_type_name(right)}")
    else:
        a2, b2 = a, b
    if op == "<":
        return bool(a2 < b2)
    if op == "<=":
        return bool(a2 <= b2)
    if op == ">":
        return bool(a2 > b2)
    return bool(a2 >= b2)


def _arith(op: str, left: Any, right: Any) -> Any:
    if op == "+":
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(left, list) and isinstance(right, list):
            return left + right
    if not (is_number(left) and is_number(right)):
        raise CelError(f"no such overload: {json_type_name(left)} {op} {json_type_name(right)}")
    if isinstance(left, int) != isinstance(right, int):
        raise CelError(f"no such overload: int {op} double (convert with int() or double())")
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0 and isinstance(right, int):
        raise CelError("divide by zero" if op == "/" else "modulus by zero")
    if op == "/":
        if isinstance(left, int):
            quotient = abs(left) // abs(right)
            return quotient if (left >= 0) == (right >= 0) else -quotient
        return left / right if right != 0 else (math.copysign(math.inf, left) if left else math.nan)
    if isinstance(left, float):
        raise CelError("no such overload: double % double")
    return int(math.fmod(left, right))


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise CelError("no such overload: int(bool)")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value) or not -(2**63) <= value < 2**63:
            raise CelError("int() out of range")
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            raise CelError(f"cannot convert {value!r} to int") from None
    raise CelError(f"no such overload: int({json_type_name(value)})")


def _to_double(value: Any) -> float:
    if isinstance(value, bool):
        raise CelError("no such overload: double(bool)")
    if is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise CelError(f"cannot convert {value!r} to double") from None
    raise CelError(f"no such overload: double({json_type_name(value)})")


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float_g(value)
    if isinstance(value, int | str):
        return str(value)
    raise CelError(f"no such overload: string({json_type_name(value)})")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in ("1", "t", "true", "TRUE", "True"):
            return True
        if value in ("0", "f", "false", "FALSE", "False"):
            return False
    raise CelError(f"cannot convert {json_type_name(value)} to bool")


def _size(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise CelError(f"no such overload: size({json_type_name(value)})")


def _parse_json(value: Any) -> Any:
    if not isinstance(value, str):
        raise CelError("parseJson() needs a string")
    try:
        return json.loads(value)
    except ValueError as exc:
        raise CelError(f"parseJson(): invalid JSON: {exc}") from None


_FUNCTIONS = {
    "int": _to_int,
    "uint": _to_int,
    "double": _to_double,
    "string": _to_string,
    "bool": _to_bool,
    "size": _size,
    "parseJson": _parse_json,
}


def _method(target: Any, name: str, args: list[Any]) -> Any:
    if name == "size" and not args:
        return _size(target)
    if isinstance(target, str) and len(args) == 1 and isinstance(args[0], str):
        if name == "contains":
            return args[0] in target
        if name == "startsWith":
            return target.startswith(args[0])
        if name == "endsWith":
            return target.endswith(args[0])
        if name == "matches":
            return re.search(args[0], target) is not None
    raise CelError(f"no such method: {json_type_name(target)}.{name}")


def cel_eval(node: Any, env: dict[str, Any]) -> Any:
    """Evaluate one node of the compiler's CEL syntax tree."""
    tag = node[0]
    if tag == "lit":
        return node[1]
    if tag == "id":
        if node[1] not in env:
            raise CelError(f"undeclared reference to '{node[1]}'")
        return env[node[1]]
    if tag == "dot":
        target = cel_eval(node[1], env)
        if not isinstance(target, dict):
            raise CelError(f"no such field '{node[2]}' on a {json_type_name(target)}")
        if node[2] not in target:
            raise CelError(f"no such key: {node[2]}")
        return target[node[2]]
    if tag == "idx":
        target = cel_eval(node[1], env)
        key = cel_eval(node[2], env)
        if isinstance(target, dict):
            if not isinstance(key, str) or key not in target:
                raise CelError(f"no such key: {key}")
            return target[key]
        if isinstance(target, list):
            if not is_number(key) or key != int(key) or not 0 <= int(key) < len(target):
                raise CelError(f"index out of range: {key}")
            return target[int(key)]
        raise CelError(f"cannot index a {json_type_name(target)}")
    if tag == "call":
        function = _FUNCTIONS.get(node[1])
        if function is None or len(node[2]) != 1:
            raise CelError(f"unknown function {node[1]}() with {len(node[2])} argument(s)")
        return function(cel_eval(node[2][0], env))
    if tag == "mcall":
        return _method(cel_eval(node[1], env), node[2], [cel_eval(a, env) for a in node[3]])
    if tag == "not":
        value = cel_eval(node[1], env)
        if not isinstance(value, bool):
            raise CelError("no such overload: !" + json_type_name(value))
        return not value
    if tag == "neg":
        value = cel_eval(node[1], env)
        if not is_number(value):
            raise CelError("no such overload: -" + json_type_name(value))
        return -value
    if tag in ("and", "or"):
        # CEL's commutative logic: a decisive side wins even if the other side errs.
        decisive = tag == "or"
        results: list[Any] = []
        for side in (node[1], node[2]):
            try:
                value = cel_eval(side, env)
            except CelError as exc:
                results.append(exc)
                continue
            if not isinstance(value, bool):
                results.append(CelError(f"no such overload: {json_type_name(value)} {tag}"))
                continue
            if value is decisive:
                return decisive
            results.append(value)
        for result in results:
            if isinstance(result, CelError):
                raise result
        return not decisive
    if tag == "cond":
        test = cel_eval(node[1], env)
        if not isinstance(test, bool):
            raise CelError("the condition of ?: is not a boolean")
        return cel_eval(node[2] if test else node[3], env)
    if tag == "op":
        op, left, right = node[1], cel_eval(node[2], env), cel_eval(node[3], env)
        if op == "==":
            return _cel_equal(left, right)
        if op == "!=":
            return not _cel_equal(left, right)
        if op in ("<", "<=", ">", ">="):
            return _cel_compare(op, left, right)
        if op == "in":
            if isinstance(right, list):
                return any(_cel_equal(left, item) for item in right)
            if isinstance(right, dict):
                return left in right
            raise CelError(f"no such overload: in {json_type_name(right)}")
        return _arith(op, left, right)
    if tag == "list":
        return [cel_eval(item, env) for item in node[1]]
    if tag == "map":
        return {cel_eval(k, env): cel_eval(v, env) for k, v in node[1]}
    raise CelError(f"unsupported CEL node {tag!r}")


def evaluate_condition(ast: Any, parameters: dict[str, Any], artifacts: dict[str, Any]) -> bool:
    """A ``triggerPolicy.condition`` over a task's resolved inputs."""
    env = {
        "inputs": {
            "parameter_values": parameters,
            "artifacts": {name: {"artifacts": items} for name, items in artifacts.items()},
        }
    }
    result = cel_eval(ast, env)
    if not isinstance(result, bool):
        raise CelError(f"the condition returned {result!r}, not a boolean")
    return result


def select(value: Any, ast: Any) -> Any:
    """A ``parameterExpressionSelector`` over a parameter value."""
    fields: dict[str, Any] = {"string_value": value_to_text(value)}
    if value is None:
        fields["null_value"] = None
    elif isinstance(value, bool):
        fields["bool_value"] = value
    elif is_number(value):
        fields["number_value"] = value
    elif isinstance(value, list):
        fields["list_value"] = value
    elif isinstance(value, dict):
        fields["struct_value"] = value
    return cel_eval(ast, fields)


# ---------------------------------------------------------------------------------------
# Output parameters and ExecutorOutput (apps/engine/executor_io.py)
# ---------------------------------------------------------------------------------------

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_parameter_text(text: str, parameter_type: str, name: str = "") -> Any:
    """Parse an output parameter file by its declared type (KFP's ``TextToPbValue``)."""
    label = f"output parameter '{name}'" if name else "output parameter"
    stripped = text.strip()
    try:
        if parameter_type == "STRING":
            return text
        if parameter_type == "NUMBER_INTEGER":
            return int(stripped, 10)
        if parameter_type == "NUMBER_DOUBLE":
            return float(stripped)
        if parameter_type == "BOOLEAN":
            if stripped in _TRUE:
                return True
            if stripped in _FALSE:
                return False
            raise ValueError(f"{stripped!r} is not a boolean")
        if parameter_type in ("LIST", "STRUCT", "TASK_FINAL_STATUS", "TASK_CONFIG"):
            try:
                value = json.loads(text)
            except RecursionError:
                raise ValueError("the JSON is nested too deeply") from None
            want = list if parameter_type == "LIST" else dict
            if not isinstance(value, want):
                raise ValueError(f"expected a {parameter_type} but the JSON is a {json_type_name(value)}")
            return value
    except ValueError as exc:
        raise OutputError(f"{label} ({parameter_type}) could not be read: {exc}") from exc
    raise OutputError(f"{label} has an unknown type {parameter_type}")


def _legacy_parameter(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        kind, inner = next(iter(value.items()))
        if kind == "intValue":
            return int(inner)
        if kind == "doubleValue":
            return float(inner)
        if kind == "stringValue":
            return str(inner)
    return value


def is_absent(raw: Any) -> bool:
    # Argo gives a skipped step's outputs their declared default (ABSENT); older Argo
    # versions leave the reference itself in place.
    return raw is None or (isinstance(raw, str) and (raw == ABSENT or raw.startswith(OB)))


def _leaf_text(raw: Any) -> str:
    # Argo's aggregation of a loop's outputs parses values that are JSON lists or
    # objects; give them back as text.
    return raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"), ensure_ascii=False)


def executor_output(raw: Any, task: str) -> dict[str, Any]:
    """A step's ``executor_output.json`` as Argo read it (empty when it wrote none)."""
    if is_absent(raw):
        return {}
    if isinstance(raw, dict):
        return raw
    text = _leaf_text(raw)
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise OutputError(f"task '{task}': executor_output.json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise OutputError(f"task '{task}': executor_output.json is not a JSON object")
    return value


def output_parameter(info: dict[str, Any], file_raw: Any, exec_raw: Any, ran: bool) -> tuple[bool, Any]:
    """One output parameter of an upstream step: ExecutorOutput wins, then its file."""
    task, name, ptype = info["task"], info["key"], info["type"]
    produced = executor_output(exec_raw, task)
    values = dict(produced.get("parameterValues") or {})
    for key, legacy in (produced.get("parameters") or {}).items():
        values.setdefault(key, _legacy_parameter(legacy))
    if name in values:
        value = normalize_parameter_value(values[name], ptype)
        if ptype == "STRING" and not isinstance(value, str):
            raise OutputError(
                f"task '{task}': output parameter '{name}' should be a string, got a {json_type_name(value)}"
            )
        return True, value
    if not is_absent(file_raw):
        return True, parse_parameter_text(_leaf_text(file_raw), ptype, name)
    if ran:
        raise OutputError(f"task '{task}' did not produce its output parameter '{name}'")
    return False, f"task '{task}' did not run"


def output_artifacts(info: dict[str, Any], exec_raw: Any, ident: str) -> list[dict[str, Any]]:
    """One output artifact (list) of an upstream step, as RuntimeArtifacts for an ExecutorInput."""
    name = info["key"]
    directory = info.get("dir") or ""
    base = {
        "name": f"{ident}/{name}" if ident else name,
        "type": info["type"],
        "uri": f"{directory}/{info['file']}" if directory and info.get("file") else info.get("path") or "",
        "metadata": dict(info.get("meta") or {}),
    }
    written = ((executor_output(exec_raw, info["task"]).get("artifacts") or {}).get(name) or {}).get(
        "artifacts"
    ) or []
    if not written:
        return [base]
    root = str(info.get("root") or "")
    out = [_merge_artifact(base, written[0], root, directory)]
    if info.get("list"):
        for extra in written[1:]:
            blank = dict(base, uri="", metadata={})
            out.append(_merge_artifact(blank, extra, root, directory))
    return out


def _merge_artifact(base: dict[str, Any], written: Any, root: str, directory: str) -> dict[str, Any]:
    # KFP's mergeRuntimeArtifacts: metadata merged over the provisioned one; a URI the
    # step wrote replaces the provisioned one. A URI inside the producer's output
    # directory is where this pod received that directory.
    if not isinstance(written, dict):
        return base
    metadata = dict(base["metadata"])
    metadata.update(written.get("metadata") or {})
    uri = str(written.get("uri") or "") or base["uri"]
    if root and directory and (uri == root or uri.startswith(root + "/")):
        uri = directory + uri[len(root) :]
    elif root and uri.startswith(root + "/"):
        uri = base["uri"]
    return dict(base, metadata=metadata, uri=uri)


# ---------------------------------------------------------------------------------------
# Placeholders (apps/engine/placeholders.py)
# ---------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{\$(?:\.[^{}]*)?\}\}")
_IO = re.compile(
    r"""^\$\.(?P<side>inputs|outputs)\.(?P<group>parameters|artifacts)\['(?P<name>[^']*)'\]"""
    r"""(?:\.(?P<attr>uri|path|metadata|output_file|value))?(?:\['(?P<key>[^']*)'\])?$"""
)


def local_path_for_uri(uri: str) -> str:
    """Where an artifact URI is mounted inside a step, as KFP maps it."""
    for prefix, mount in (("gs://", "/gcs/"), ("minio://", "/minio/"), ("s3://", "/s3/")):
        if uri.startswith(prefix):
            return mount + uri[len(prefix) :]
    if uri.startswith("oci://"):
        return "/oci/" + uri[len("oci://") :].replace("/", "_") + "/models"
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return uri


class Renderer:
    """Renders KFP placeholders against one ExecutorInput and the run context."""

    def __init__(self, executor_input: dict[str, Any], constants: dict[str, str]) -> None:
        self.executor_input = executor_input
        inputs = executor_input.get("inputs") or {}
        self.parameters: dict[str, Any] = inputs.get("parameterValues") or {}
        self.input_artifacts: dict[str, Any] = inputs.get("artifacts") or {}
        outputs = executor_input.get("outputs") or {}
        self.output_parameters: dict[str, Any] = outputs.get("parameters") or {}
        self.output_artifacts: dict[str, Any] = outputs.get("artifacts") or {}
        self.output_file: str = outputs.get("outputFile") or ""
        self.constants = constants

    def is_present(self, name: str) -> bool:
        if name in self.parameters and self.parameters[name] is not None:
            return True
        entry = self.input_artifacts.get(name)
        return bool(entry and entry.get("artifacts"))

    def resolve(self, placeholder: str) -> str | None:
        if placeholder == OB + "$" + CB:
            return json.dumps(self.executor_input, separators=(",", ":"), ensure_ascii=False)
        if placeholder in self.constants:
            return self.constants[placeholder]
        if placeholder in (OB + "$.outputs.output_file" + CB, OB + "$.outputMetadataUri" + CB):
            return self.output_file
        match = _IO.match(placeholder[2:-2])
        if match is None:
            return None
        side, group, name, attr, key = match.group("side", "group", "name", "attr", "key")
        if group == "parameters":
            if side == "inputs":
                if attr is not None or name not in self.parameters or self.parameters[name] is None:
                    return None
                return value_to_text(self.parameters[name])
            if attr == "output_file" and name in self.output_parameters:
                return str(self.output_parameters[name].get("outputFile", ""))
            return None
        source = self.input_artifacts if side == "inputs" else self.output_artifacts
        artifacts = (source.get(name) or {}).get("artifacts") or []
        if not artifacts:
            return None
        if attr is None and key is None:
            return json.dumps(artifacts, separators=(",", ":"), ensure_ascii=False)
        first = artifacts[0]
        if attr == "uri":
            return str(first.get("uri", ""))
        if attr == "path":
            return local_path_for_uri(str(first.get("uri", "")))
        if attr == "metadata":
            metadata = first.get("metadata") or {}
            if key is None:
                return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
            if key not in metadata:
                return None
            return value_to_text(metadata[key])
        return None

    def substitute(self, text: str) -> str:
        if OB + "$" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            value = self.resolve(match.group(0))
            return match.group(0) if value is None else value

        return _PLACEHOLDER.sub(replace, text)

    def items(self, node: Any) -> list[str]:
        """The arguments a (structured) placeholder node yields."""
        if node is None:
            return []
        if isinstance(node, str):
            return [self.substitute(node)]
        if isinstance(node, list):
            out: list[str] = []
            for item in node:
                out.extend(self.items(item))
            return out
        if isinstance(node, dict) and "Concat" in node:
            return ["".join("".join(self.items(item)) for item in node["Concat"])]
        if isinstance(node, dict) and "IfPresent" in node:
            body = node["IfPresent"]
            branch = body.get("Then") if self.is_present(str(body.get("InputName"))) else body.get("Else")
            return self.items(branch)
        raise InputError(f"unknown structured placeholder: {node!r}")


def run_constants(run: dict[str, Any], task_name: str, task_uuid: str) -> dict[str, str]:
    """The run-context placeholders (``pipeline_job_name`` ...) and their values."""
    values = {
        "pipeline_job_name": run.get("run_name", ""),
        "pipeline_job_resource_name": run.get("resource_name", ""),
        "pipeline_job_uuid": run.get("run_id", ""),
        "pipeline_task_name": task_name,
        "pipeline_task_uuid": task_uuid,
        "pipeline_root": run.get("pipeline_root", ""),
        "pipeline_job_create_time_utc": _utc(run.get("created", "")),
        "pipeline_job_schedule_time_utc": _utc(run.get("scheduled") or run.get("created", "")),
        "workspace_path": run.get("workspace_path", "/kfp-workspace"),
    }
    return {OB + "$." + name + CB: str(value) for name, value in values.items()}


def _utc(text: str) -> str:
    # Argo's creationTimestamp is RFC 3339 with a Z; Canal's engine writes isoformat + Z.
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]00:00)?", text or "")
    if match is None:
        return text or ""
    return match.group(1) + (match.group(2) or "") + "Z"


def task_uuid(run_id: str, key: str) -> str:
    """The id of node ``key`` of run ``run_id`` (apps.engine.keys.task_uuid)."""
    try:
        namespace = uuid.UUID(run_id)
    except ValueError:
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, run_id)
    return str(uuid.uuid5(namespace, key))


# ---------------------------------------------------------------------------------------
# Cache keys (apps/engine/cache.py)
# ---------------------------------------------------------------------------------------


def cache_key(
    parameters: dict[str, Any],
    artifacts: dict[str, list[dict[str, Any]]],
    cache: dict[str, Any],
    pvc_names: list[str],
) -> dict[str, Any]:
    """The CacheKey message as the JSON object KFP hashes."""
    key: dict[str, Any] = {}
    names = {
        name: {"artifactNames": [a.get("name", "") for a in items]} if items else {}
        for name, items in artifacts.items()
    }
    if names:
        key["inputArtifactNames"] = names
    if parameters:
        key["inputParameterValues"] = dict(parameters)
    outputs: dict[str, Any] = {}
    for name, spec in (cache.get("output_artifacts") or {}).items():
        entry: dict[str, Any] = {"type": spec["type"]}
        if spec.get("metadata"):
            entry["metadata"] = spec["metadata"]
        outputs[name] = entry
    if outputs:
        key["outputArtifactsSpec"] = outputs
    if cache.get("output_parameters"):
        key["outputParametersSpec"] = dict(cache["output_parameters"])
    container: dict[str, Any] = {}
    if cache.get("image"):
        container["image"] = cache["image"]
    cmd_args = [*cache.get("command", []), *cache.get("args", [])]
    if cmd_args:
        container["cmdArgs"] = cmd_args
    pvcs = sorted(set(pvc_names))
    if pvcs:
        container["pvcNames"] = pvcs
    key["containerSpec"] = container
    return key


def fingerprint(key: dict[str, Any]) -> str:
    """SHA-256 of the Go ``encoding/json`` form of a cache key."""
    return hashlib.sha256(go_json_dumps(key).encode("utf-8")).hexdigest()


def custom_key_fingerprint(component_name: str, custom: str) -> str:
    """The lookup key for a task with a custom ``cachingOptions.cacheKey``."""
    digest = hashlib.sha256()
    digest.update(component_name.encode("utf-8"))
    digest.update(b"\0")
    digest.update(custom.encode("utf-8"))
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# Resolving inputs from recipes (apps/engine/execution.py _resolve_inputs)
# ---------------------------------------------------------------------------------------

# PipelineTaskFinalStatus.state and error.code by Argo phase, as the engine fills them
# for the matching Canal state (SUCCEEDED/SKIPPED -> COMPLETE, FAILED, CANCELED).
_FINAL_STATUS = {
    "Succeeded": ("COMPLETE", 3),
    "Skipped": ("COMPLETE", 4),
    "Omitted": ("COMPLETE", 4),
    "Failed": ("FAILED", 5),
    "Error": ("FAILED", 5),
}


class Resolver:
    """Evaluates the compiler's recipes against the leaves Argo handed this pod."""

    def __init__(self, config: dict[str, Any], leaves: dict[int, Any]) -> None:
        self.config = config
        self.leaves = leaves
        self.run: dict[str, Any] = config.get("run") or {}
        self._groups: dict[str, tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]] = {}

    def leaf(self, index: Any) -> Any:
        if index is None:
            return None
        if index not in self.leaves:
            raise InputError(f"internal: leaf {index} was not given to this step")
        return self.leaves[index]

    def key(self, parts: list[Any]) -> str:
        """A node key from static text and iteration indexes read from item leaves."""
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(str(self.item(part[1])[0]))
        return "".join(out)

    def item(self, index: int) -> tuple[int, Any]:
        raw = self.leaf(index)
        try:
            data = raw if isinstance(raw, dict) else json.loads(_leaf_text(raw))
            return int(data["i"]), json.loads(data["v"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"internal: malformed loop item {raw!r}: {exc}") from None

    # -- parameters ---------------------------------------------------------------------
    def param(self, recipe: Any) -> tuple[bool, Any]:
        """(present, value); an absent value's "value" says why it is absent."""
        tag = recipe[0]
        if tag == "c":
            return (recipe[1] is not None), (recipe[1] if recipe[1] is not None else "it is null")
        if tag == "none":
            return False, recipe[1]
        if tag == "out":
            ran = self._ran(recipe[4])
            return output_parameter(recipe[1], self.leaf(recipe[2]), self.leaf(recipe[3]), ran)
        if tag == "item":
            return True, self.item(recipe[1])[1]
        if tag == "status":
            phase = _leaf_text(self.leaf(recipe[2]))
            state, code = _FINAL_STATUS.get(phase, ("FAILED", 5))
            return True, {
                "state": state,
                "pipeline_job_resource_name": self.run.get("resource_name", ""),
                "pipeline_task_name": recipe[1]["task"],
                "error": {"code": code},
            }
        if tag == "drv":
            raw = self.leaf(recipe[1])
            if is_absent(raw):
                return False, recipe[2]
            return True, json.loads(_leaf_text(raw))
        if tag == "oneof":
            reasons = []
            for option in recipe[1]:
                present, value = self.param(option)
                if present:
                    return True, value
                reasons.append(str(value))
            return False, "no branch of the dsl.OneOf produced it (" + "; ".join(reasons) + ")"
        if tag == "collect":
            return True, [value for present, value in self._each(recipe[1], self.param) if present]
        if tag == "in":
            params, _ = self.group(recipe[1])
            if recipe[2] in params:
                return True, params[recipe[2]]
            return False, f"the DAG input '{recipe[2]}' has no value"
        raise InputError(f"internal: unknown recipe {tag!r}")

    def _ran(self, index: Any) -> bool:
        return index is not None and not is_absent(self.leaf(index))

    def _each(self, inner: Any, evaluate: Any) -> list[Any]:
        """Evaluate ``inner`` once per loop iteration: its leaves hold Argo's aggregated lists."""
        indexes = sorted(_leaf_indexes(inner))
        lists: dict[int, list[Any]] = {}
        for index in indexes:
            raw = self.leaves.get(index)
            if is_absent(raw):
                lists[index] = []  # the loop had no iterations (Argo skipped it)
                continue
            value = raw if isinstance(raw, list) else json.loads(_leaf_text(raw))
            if not isinstance(value, list):
                raise InputError(f"internal: aggregated loop output is a {json_type_name(value)}")
            lists[index] = value
        count = max((len(v) for v in lists.values()), default=0)
        out = []
        saved = dict(self.leaves)
        try:
            for i in range(count):
                for index in indexes:
                    values = lists[index]
                    self.leaves[index] = values[i] if i < len(values) else ABSENT
                out.append(evaluate(inner))
        finally:
            self.leaves = saved
        return out

    # -- artifacts ----------------------------------------------------------------------
    def artifacts(self, recipe: Any) -> tuple[bool, Any]:
        """(present, [RuntimeArtifact...]) or (False, why)."""
        tag = recipe[0]
        if tag == "none":
            return False, recipe[1]
        if tag == "art":
            info = recipe[1]
            if not self._ran(recipe[3]):
                return False, f"task '{info['task']}' did not run"
            ident = _leaf_text(self.leaf(recipe[4])) if recipe[4] is not None else ""
            if info.get("prefix"):
                # Collected from a loop: the consumer downloaded the loop's whole directory
                # of this task's outputs; this iteration's are under its key directory.
                keydir = _leaf_text(self.leaf(recipe[5])) if len(recipe) > 5 else ""
                loop = key_directory(self.key(info.get("loop") or []))
                relative = keydir[len(loop) + 1 :] if keydir.startswith(loop + "/") else keydir
                info = dict(info, dir=f"{info['prefix']}/{relative}")
            return True, output_artifacts(info, self.leaf(recipe[2]), "" if is_absent(ident) else ident)
        if tag == "imp":
            raw = self.leaf(recipe[2])
            if is_absent(raw):
                return False, f"importer '{recipe[1]['task']}' did not run"
            desc = json.loads(_leaf_text(raw))
            if recipe[1].get("path"):
                desc = dict(desc, uri=recipe[1]["path"])
            return True, [desc]
        if tag == "oneof":
            reasons = []
            for option in recipe[1]:
                present, value = self.artifacts(option)
                if present:
                    return True, value
                reasons.append(str(value))
            return False, "no branch of the dsl.OneOf produced it (" + "; ".join(reasons) + ")"
        if tag == "collect":
            out: list[Any] = []
            for present, value in self._each(recipe[1], self.artifacts):
                if present:
                    out.extend(value)
            return True, out
        if tag == "in":
            _, arts = self.group(recipe[1])
            if recipe[2] in arts:
                return True, arts[recipe[2]]
            return False, f"the DAG input artifact '{recipe[2]}' has no value"
        if tag == "aitem":
            # ParallelFor over artifacts: this iteration's element of the list.
            present, items = self.artifacts(recipe[1])
            index = self.item(recipe[2])[0]
            if not present or not isinstance(items, list) or not 0 <= index < len(items):
                return False, f"the loop's artifact list has no element {index}"
            return True, [items[index]]
        raise InputError(f"internal: unknown artifact recipe {tag!r}")

    # -- a task's inputs, as the engine resolves them ------------------------------------
    def group(self, gid: str) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        """The resolved inputs of an enclosing DAG task (computed once)."""
        if gid not in self._groups:
            spec = self.config["groups"][gid]
            try:
                self._groups[gid] = self.resolve(spec)
            except (InputError, OutputError) as exc:
                raise InputError(f"task '{spec['task']}': {exc}") from None
        return self._groups[gid]

    def resolve(self, spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        """Parameters and artifacts of one task: selectors, f-string constants, types,
        defaults and required inputs, in the engine's order."""
        params: dict[str, Any] = {}
        why_absent: dict[str, str] = {}
        formats: dict[str, str] = spec.get("formats") or {}
        for name, recipe in (spec.get("params") or {}).items():
            if name in formats:
                continue
            present, value = self.param(recipe)
            if present:
                params[name] = value
            else:
                why_absent[name] = str(value)
        if formats:
            key = self.key(spec.get("key") or [])
            renderer = Renderer(
                {"inputs": {"parameterValues": dict(params)}},
                run_constants(self.run, spec.get("task", ""), task_uuid(self.run.get("run_id", ""), key)),
            )
            for name, text in formats.items():
                params[name] = renderer.substitute(text)
        selectors = spec.get("selectors") or {}
        for name in list(spec.get("params") or {}):
            selector = selectors.get(name)
            if selector and name in params:
                try:
                    params[name] = select(params[name], selector[0])
                except CelError as exc:
                    raise InputError(f"input '{name}': the selector {selector[1]!r} failed: {exc}") from None
            if name in params and params[name] is None:
                del params[name]
                why_absent.setdefault(name, "it resolved to null")
        definitions: dict[str, Any] = spec.get("defs") or {}
        for name in list(params):
            if name in definitions:
                params[name] = normalize(name, definitions[name], params[name])
        loop_item = spec.get("loop_item")
        for name, definition in definitions.items():
            if name in params or name == loop_item:
                continue
            if definition.get("has_default") and definition.get("default") is not None:
                params[name] = definition["default"]
            elif not definition.get("optional") and definition.get("type") != "TASK_CONFIG":
                detail = f" ({why_absent[name]})" if name in why_absent else ""
                raise InputError(f"the required input '{name}' has no value{detail}")
        artifacts: dict[str, list[dict[str, Any]]] = {}
        absent: dict[str, str] = {}
        for name, recipe in (spec.get("arts") or {}).items():
            present, value = self.artifacts(recipe)
            if present:
                artifacts[name] = value
            else:
                absent[name] = str(value)
        loop_artifact = spec.get("loop_artifact")
        for name, art in (spec.get("art_defs") or {}).items():
            if name in artifacts or name == loop_artifact or art.get("optional"):
                continue
            detail = f" ({absent[name]})" if name in absent else ""
            raise InputError(f"the required input artifact '{name}' has no value{detail}")
        return params, artifacts


def _leaf_indexes(recipe: Any) -> set[int]:
    """Every leaf a recipe reads (the integers in leaf positions)."""
    found: set[int] = set()
    stack = [recipe]
    while stack:
        node = stack.pop()
        if not isinstance(node, list) or not node or not isinstance(node[0], str):
            continue
        tag = node[0]
        if tag == "out":
            found.update(i for i in node[2:5] if isinstance(i, int))
        elif tag == "art":
            found.update(i for i in node[2:6] if isinstance(i, int))
        elif tag in ("item", "drv"):
            found.add(node[1])
        elif tag in ("status", "imp"):
            found.add(node[2])
        elif tag == "oneof":
            stack.extend(node[1])
        elif tag == "collect":
            stack.append(node[1])
    return found


_UNSAFE_SEGMENT = re.compile(r"[^A-Za-z0-9._-]")


def key_directory(key: str) -> str:
    """A node key as an object-store path: ``root/sub/loop#3`` -> ``sub/loop/3``."""
    parts: list[str] = []
    for segment in key.split("/")[1:]:
        for piece in segment.split("#"):
            cleaned = _UNSAFE_SEGMENT.sub("-", piece)
            parts.append(cleaned if cleaned not in ("", ".", "..") else "-")
    return "/".join(parts)


def normalize(name: str, definition: dict[str, Any], value: Any) -> Any:
    """Coerce a resolved value to its declared type, as KFP's driver does, or raise."""
    ptype = definition.get("type", "STRING")
    value = normalize_parameter_value(value, ptype)
    if ptype == "STRING":
        if not isinstance(value, str):
            value = value_to_text(value)
    elif ptype in ("NUMBER_INTEGER", "NUMBER_DOUBLE"):
        if not is_number(value):
            raise InputError(f"input '{name}' expects a number ({ptype}) but got a {json_type_name(value)}")
    elif ptype == "BOOLEAN":
        if not isinstance(value, bool):
            raise InputError(f"input '{name}' expects a boolean but got a {json_type_name(value)}")
    elif ptype == "LIST":
        if not isinstance(value, list):
            raise InputError(f"input '{name}' expects a list but got a {json_type_name(value)}")
    elif ptype in ("STRUCT", "TASK_FINAL_STATUS", "TASK_CONFIG") and not isinstance(value, dict):
        raise InputError(f"input '{name}' expects a struct but got a {json_type_name(value)}")
    literals = definition.get("literals") or []
    if literals and value not in literals:
        allowed = ", ".join(value_to_text(v) for v in literals)
        raise InputError(f"input '{name}' is {value_to_text(value)!r}, which is not one of: {allowed}")
    return value


# ---------------------------------------------------------------------------------------
# The modes
# ---------------------------------------------------------------------------------------


class Driver:
    """One driver invocation: configuration and leaves in, output files out."""

    def __init__(self, config: dict[str, Any], leaves: dict[int, Any], out_dir: str) -> None:
        self.config = config
        self.resolver = Resolver(config, leaves)
        self.out_dir = out_dir
        self.outputs: dict[str, str] = {}
        self._objects: dict[str, Any] = {}

    def emit(self, name: str, value: str) -> None:
        self.outputs[name] = value

    def write(self) -> None:
        os.makedirs(self.out_dir, exist_ok=True)
        for name, value in self.outputs.items():
            with open(os.path.join(self.out_dir, name), "w", encoding="utf-8") as fh:
                fh.write(value)

    def run(self) -> None:
        mode = self.config.get("mode")
        handler = {
            "task": self.task,
            "importer": self.importer,
            "gate": self.gate,
            "iter": self.iterate,
            "check": self.check,
            "pvc": self.pvc,
        }.get(str(mode))
        if handler is None:
            raise InputError(f"internal: unknown driver mode {mode!r}")
        handler()

    def _condition(self, params: dict[str, Any], artifacts: dict[str, Any]) -> bool:
        condition = self.config.get("condition")
        if not condition:
            return True
        try:
            return evaluate_condition(condition[0], params, artifacts)
        except CelError as exc:
            raise InputError(f"the condition {condition[1]!r} could not be evaluated: {exc}") from None

    def _record(self, key: str, params: dict[str, Any], artifacts: dict[str, Any], **extra: Any) -> None:
        # What Canal's persistence agent records for the task: its key and resolved inputs.
        record = {"key": key, "parameters": params, "artifacts": artifacts, **extra}
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        if len(text) > _MAX_OUTPUT:
            record = {"key": key, "truncated": True, **extra}
            text = json.dumps(record, separators=(",", ":"))
        self.emit("resolved", text)

    # -- task ---------------------------------------------------------------------------
    def task(self) -> None:
        cfg = self.config
        key = self.resolver.key(cfg["key"])
        params, artifacts = self.resolver.resolve(cfg)
        run = self._condition(params, artifacts)
        uid = uuid.uuid4().hex
        self.emit("condition", "true" if run else "false")
        self.emit("uid", uid)
        # Where this execution's artifacts go under <run>/<task>/: its id, below the
        # path of its loop iterations when it runs in one (so a dsl.Collected consumer
        # can download one loop's outputs as a directory).
        parent = key.rsplit("/", 1)[0]
        self.emit("keydir", f"{key_directory(parent)}/{uid}" if "#" in parent else uid)
        for slot, spec in (cfg.get("prefix_slots") or {}).items():
            self.emit(slot, f"{spec['base']}/{key_directory(self.resolver.key(spec['loop']))}")
        # Every output exists even when the step is skipped: Argo reads them all.
        for slot in [
            *(cfg.get("render") or {}),
            *(cfg.get("render_resources") or {}),
            *(cfg.get("platform") or {}),
        ]:
            self.emit(slot, "")
        self.emit("ident", uid)
        self.emit("cache-key", "")
        if cfg.get("patch"):
            self.emit("pod-spec-patch", "{}")
        if not run:
            self._record(key, params, artifacts, condition=False, uid=uid)
            return
        executor_input = self._executor_input(params, artifacts)
        pvcs = self._platform_values(params)
        cache = cfg.get("cache") or {}
        computed = ""
        lookup = ""
        if cache:
            try:
                computed = fingerprint(cache_key(params, artifacts, cache, pvcs))
            except (ValueError, TypeError, UnicodeEncodeError) as exc:
                raise InputError(f"cannot compute the cache fingerprint: {exc}") from None
            custom = cache.get("custom_key") or ""
            lookup = custom_key_fingerprint(cfg.get("component", ""), custom) if custom else computed
        enabled = bool(cache.get("enabled"))
        self.emit("ident", lookup if enabled else uid)
        prefix = cache.get("prefix", "")
        self.emit("cache-key", f"{prefix}{lookup}" if enabled else "")
        self._check_presence(executor_input)
        constants = run_constants(self.run_context(), cfg.get("task", ""), task_uuid(self._run_id(), key))
        renderer = Renderer(executor_input, constants)
        for slot, node in (cfg.get("render") or {}).items():
            rendered = renderer.items(node)
            if len(rendered) != 1:
                raise InputError(f"internal: element {slot} rendered to {len(rendered)} arguments")
            self.emit(slot, rendered[0])
        for slot, text in (cfg.get("render_resources") or {}).items():
            self.emit(slot, renderer.substitute(text))
        patch_spec = cfg.get("patch")
        if patch_spec:
            patch = _pod_spec_patch(patch_spec, self._objects)
            accelerator = patch_spec.get("accelerator")
            if accelerator:
                kind = renderer.substitute(accelerator["type"]).strip()
                count = renderer.substitute(accelerator["count"]).strip() or "1"
                if kind:
                    resource = (
                        kind
                        if "/" in kind
                        else ("cloud-tpus.google.com/v2" if "TPU" in kind.upper() else "nvidia.com/gpu")
                    )
                    patch["containers"] = [{"name": "main", "resources": {"limits": {resource: count}}}]
            self.emit("pod-spec-patch", json.dumps(patch, separators=(",", ":")))
        self._record(
            key,
            params,
            artifacts,
            fingerprint=computed,
            cache_enabled=enabled,
            cache_lookup=lookup,
            condition=run,
            uid=uid,
        )

    def run_context(self) -> dict[str, Any]:
        return self.resolver.run

    def _run_id(self) -> str:
        return str(self.resolver.run.get("run_id", ""))

    def _executor_input(self, params: dict[str, Any], artifacts: dict[str, Any]) -> dict[str, Any]:
        out = self.config.get("outputs") or {}
        inputs: dict[str, Any] = {"parameterValues": dict(params)}
        if artifacts:
            inputs["artifacts"] = {name: {"artifacts": items} for name, items in artifacts.items()}
        outputs: dict[str, Any] = {"outputFile": out.get("file", "")}
        if out.get("params"):
            outputs["parameters"] = {name: {"outputFile": path} for name, path in out["params"].items()}
        if out.get("arts"):
            outputs["artifacts"] = {
                name: {
                    "artifacts": [
                        {
                            "name": name,
                            "type": spec["type"],
                            "uri": spec["path"],
                            "metadata": dict(spec.get("metadata") or {}),
                        }
                    ]
                }
                for name, spec in out["arts"].items()
            }
        return {"inputs": inputs, "outputs": outputs}

    def _check_presence(self, executor_input: dict[str, Any]) -> None:
        # The compiler expanded IfPresent placeholders assuming these inputs are (or are
        # not) present; a run that disagrees must fail rather than run a wrong command.
        renderer = Renderer(executor_input, {})
        for name, expected in (self.config.get("presence") or {}).items():
            if renderer.is_present(name) != expected:
                state = "absent" if expected else "present"
                raise InputError(
                    f"input '{name}' is {state} at run time, but the Workflow was compiled for the "
                    f"command line it has when it is {'present' if expected else 'absent'} (IfPresent)"
                )

    def _platform_values(self, params: dict[str, Any]) -> list[str]:
        """Resolve Kubernetes settings that read task inputs; returns the PVC names.

        Names (a secret's, a PVC's) become outputs the template reads; whole objects (a
        node selector, tolerations, node affinity, pull secrets) go into one podSpecPatch.
        """
        pvcs: list[str] = []
        objects: dict[str, Any] = {}
        for slot, spec in (self.config.get("platform") or {}).items():
            present, value = self.resolver.param(spec["recipe"])
            kind = spec.get("json")
            if kind:
                if isinstance(value, str) and present:
                    try:
                        value = json.loads(value) if value.strip() else None
                    except ValueError:
                        raise InputError(f"{spec['what']} is not valid JSON") from None
                objects[slot] = value if present else None
                continue
            if not present:
                raise InputError(f"{spec['what']} has no value ({value})")
            text = value_to_text(value)
            self.emit(slot, text)
            if spec.get("pvc"):
                pvcs.append(text)
        self._objects = objects
        pvcs.extend(self.config.get("pvc_names") or [])
        return pvcs

    # -- importer -----------------------------------------------------------------------
    def importer(self) -> None:
        cfg = self.config
        key = self.resolver.key(cfg["key"])
        params, _ = self.resolver.resolve(cfg)
        spec = cfg["importer"]
        if spec.get("constant") is not None:
            uri = spec["constant"]
        else:
            source = spec.get("parameter") or ""
            if source not in params:
                raise OutputError(f"the importer's URI input '{source}' has no value")
            uri = params[source]
            if not isinstance(uri, str):
                raise OutputError(
                    f"the importer's URI input '{source}' is a {json_type_name(uri)}, not a string"
                )
        if not uri:
            raise OutputError("the importer's artifact URI is empty")
        metadata = _importer_metadata(spec.get("metadata") or {}, params)
        if not isinstance(metadata, dict):
            raise OutputError("the importer's metadata must be a mapping")
        scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
        expected = spec.get("scheme")
        if expected and scheme not in expected:
            raise OutputError(
                f"the importer's URI {uri!r} does not use {' or '.join(expected)}://, which this "
                "Workflow was compiled to download it with"
            )
        bucket, _, object_key = uri.split("://", 1)[1].partition("/") if "://" in uri else ("", "", uri)
        desc = {"name": uri, "type": spec["type"], "uri": uri, "metadata": metadata}
        self.emit("artifact", json.dumps(desc, separators=(",", ":"), ensure_ascii=False))
        self.emit("bucket", bucket)
        self.emit("key", object_key)
        self.emit("url", uri)
        self._record(key, params, {}, artifact=desc)

    # -- groups -------------------------------------------------------------------------
    def gate(self) -> None:
        cfg = self.config
        key = self.resolver.key(cfg["key"])
        params, artifacts = self.resolver.resolve(cfg)
        run = self._condition(params, artifacts)
        self.emit("condition", "true" if run else "false")
        self._record(key, params, artifacts, condition=run)

    def iterate(self) -> None:
        cfg = self.config
        key = self.resolver.key(cfg["key"])
        params, artifacts = self.resolver.resolve(cfg)
        run = self._condition(params, artifacts)
        items: list[Any] = []
        if run:
            items = self._items(params, artifacts)
        if len(items) > int(cfg.get("max_items", 10000)):
            raise InputError(
                f"the loop has {len(items):,} items; at most {cfg.get('max_items'):,} are allowed"
            )
        encoded = [
            {"i": i, "v": json.dumps(v, separators=(",", ":"), ensure_ascii=False)}
            for i, v in enumerate(items)
        ]
        self.emit("condition", "true" if run else "false")
        self.emit("items", json.dumps(encoded, separators=(",", ":"), ensure_ascii=False))
        self.emit("count", str(len(items)))
        self._record(key, params, artifacts, condition=run, iteration_count=len(items))

    def _items(self, params: dict[str, Any], artifacts: dict[str, Any]) -> list[Any]:
        spec = self.config["iterator"]
        if spec.get("artifact"):
            return list(artifacts.get(spec["artifact"]) or [])
        if spec.get("raw") is not None:
            value: Any = json.loads(spec["raw"])
            source = "the raw items"
        else:
            name = spec["input"]
            source = f"input '{name}'"
            if name not in params:
                raise InputError(f"the loop has nothing to iterate over: {source} has no value")
            value = params[name]
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise InputError(f"cannot iterate over {source}: the string is not a JSON list") from None
        if not isinstance(value, list):
            raise InputError(f"cannot iterate over {source}: it is a {json_type_name(value)}, not a list")
        return value

    def check(self) -> None:
        failed = [
            name
            for name, index in (self.config.get("statuses") or {}).items()
            if _leaf_text(self.resolver.leaf(index)) in ("Failed", "Error")
        ]
        if failed:
            raise InputError("failed: " + ", ".join(f"'{name}'" for name in failed))

    # -- kfp-kubernetes CreatePVC / DeletePVC -------------------------------------------
    def pvc(self) -> None:
        cfg = self.config
        key = self.resolver.key(cfg["key"])
        params, _ = self.resolver.resolve(cfg)
        if cfg.get("action") == "delete":
            name = params.get("pvc_name")
            if not isinstance(name, str) or not name:
                raise InputError("DeletePVC needs the name of the PVC to delete")
            manifest = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}}
        else:
            name = params.get("pvc_name") or ""
            if not name:
                suffix = params.get("pvc_name_suffix") or ""
                name = f"{cfg.get('workflow_name', 'canal')}{suffix}"
            spec: dict[str, Any] = {
                "accessModes": params.get("access_modes") or ["ReadWriteOnce"],
                "resources": {"requests": {"storage": params.get("size") or "1Gi"}},
            }
            if params.get("storage_class_name") and not params.get("default_storage_class"):
                spec["storageClassName"] = params["storage_class_name"]
            if params.get("volume_name"):
                spec["volumeName"] = params["volume_name"]
            metadata: dict[str, Any] = {"name": name}
            if params.get("annotations"):
                metadata["annotations"] = params["annotations"]
            manifest = {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": metadata,
                "spec": spec,
            }
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", str(name)):
            raise InputError(f"{name!r} is not a valid PersistentVolumeClaim name")
        self.emit("manifest", json.dumps(manifest, separators=(",", ":"), ensure_ascii=False))
        self.emit("name", str(name))
        self._record(key, params, {}, pvc=name)


def _pod_spec_patch(spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The podSpecPatch for settings only known at run time (merged with the static ones,
    since a patch replaces lists such as tolerations)."""
    patch: dict[str, Any] = {}
    selector = dict((spec.get("nodeSelector") or {}).get("static") or {})
    for slot in (spec.get("nodeSelector") or {}).get("slots") or []:
        value = values.get(slot)
        if isinstance(value, dict):
            selector.update({str(k): str(v) for k, v in value.items()})
        elif value is not None:
            raise InputError("nodeSelectorJson must be a JSON object")
    if selector:
        patch["nodeSelector"] = selector
    tolerations = list((spec.get("tolerations") or {}).get("static") or [])
    for slot in (spec.get("tolerations") or {}).get("slots") or []:
        value = values.get(slot)
        if isinstance(value, dict):
            tolerations.append(value)
        elif isinstance(value, list):
            tolerations.extend(value)
        elif value is not None:
            raise InputError("tolerationJson must be a JSON object or list")
    if tolerations:
        patch["tolerations"] = tolerations
    affinity = spec.get("nodeAffinity") or {}
    required = list(affinity.get("required") or [])
    preferred = list(affinity.get("preferred") or [])
    for slot in affinity.get("slots") or []:
        value = values.get(slot)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise InputError("nodeAffinityJson must be a JSON object")
        terms = (value.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
        required.extend(terms or [])
        preferred.extend(value.get("preferredDuringSchedulingIgnoredDuringExecution") or [])
    node_affinity: dict[str, Any] = {}
    if required:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": required}
    if preferred:
        node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    if node_affinity:
        patch["affinity"] = {"nodeAffinity": node_affinity}
    secrets = [{"name": n} for n in (spec.get("imagePullSecrets") or {}).get("static") or []]
    for slot in (spec.get("imagePullSecrets") or {}).get("slots") or []:
        value = values.get(slot)
        if isinstance(value, str) and value:
            secrets.append({"name": value})
    if secrets:
        patch["imagePullSecrets"] = secrets
    return patch


def _importer_metadata(node: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {
            str(_importer_metadata(k, parameters)): _importer_metadata(v, parameters) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_importer_metadata(item, parameters) for item in node]
    if isinstance(node, str) and OB + "$" in node:
        prefix, suffix = OB + "$.inputs.parameters['", "']" + CB
        if node.startswith(prefix) and node.endswith(suffix) and node.count(OB) == 1:
            name = node[len(prefix) : -len(suffix)]
            if name in parameters:
                return parameters[name]
        return Renderer({"inputs": {"parameterValues": dict(parameters)}}, {}).substitute(node)
    return node


def read_leaves(environ: dict[str, str]) -> dict[int, Any]:
    """``CANAL_L<n>`` environment variables, by n."""
    leaves: dict[int, Any] = {}
    for name, value in environ.items():
        if name.startswith("CANAL_L") and name[7:].isdigit():
            leaves[int(name[7:])] = value
    return leaves


def main(environ: dict[str, str] | None = None) -> int:
    """Run the driver; the exit code is 0 on success, 1 when the task must fail."""
    env = dict(os.environ if environ is None else environ)
    out_dir = env.get("CANAL_OUT") or DEFAULT_OUT_DIR
    config: dict[str, Any] = {}
    try:
        config = json.loads(env.get("CANAL_CONFIG") or "{}")
        run = dict(config.get("run") or {})
        if env.get("CANAL_CREATED"):
            run.setdefault("created", env["CANAL_CREATED"])
        config["run"] = run
        driver = Driver(config, read_leaves(env), out_dir)
        try:
            driver.run()
        finally:
            driver.write()
    except Exception as exc:  # every failure must reach the step's error output
        known = isinstance(exc, InputError | OutputError | CelError)
        message = str(exc) if known else f"internal error: {type(exc).__name__}: {exc}"
        what = config.get("task") or "the task"
        sys.stderr.write(f"canal driver: {what}: {message}\n")
        try:
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, "error"), "w", encoding="utf-8") as fh:
                fh.write(message)
        except OSError:
            pass
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
