"""JSON values the way KFP's Go backend prints them.

KFP stores parameter values as ``google.protobuf.Value`` and turns them into text in
three places that Canal must reproduce byte for byte:

* command-line placeholders and STRING coercion (``PbValueToText``): strings raw,
  numbers with ``strconv.FormatFloat(x, 'f', -1, 64)``, ``true``/``false``, and lists
  or structs as compact JSON;
* that JSON, and the cache fingerprint, go through Go's ``encoding/json``: sorted keys,
  no spaces, ``<``/``>``/``&`` escaped, non-ASCII left as UTF-8, floats in fixed
  notation between 1e-6 and 1e21 and exponent notation outside;
* CEL's ``string(double)`` uses ``%g``.

Canal keeps Python ints as ints (KFP loses the distinction because every number is a
float64); an int prints exactly like the equal float would in Go, so the text is the same.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


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
    """Go's ``strconv.FormatFloat(value, 'f', -1, 64)``: shortest digits, never an exponent."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    special = _special(value)
    if special is not None:
        return special
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    # repr() gives the shortest round-tripping digits, like Go's precision -1.
    return format(Decimal(repr(value)).normalize(), "f")


def _shortest_exponent(value: float) -> str:
    # Python's repr() and Go's 'e' format agree on shortest mantissa digits and a
    # two-digit minimum exponent ("1e+21", "1.5e-07").
    text = repr(value)
    if "e" not in text:
        mantissa, exp = f"{Decimal(text):e}".split("e")
        digits = Decimal(mantissa).normalize()
        text = f"{digits}e{int(exp):+03d}"
    return text


def format_float_g(value: float | int) -> str:
    """Go's ``fmt.Sprintf("%g", value)`` (what CEL's ``string(double)`` produces)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    special = _special(value)
    if special is not None:
        return special
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    # With the shortest precision Go's %g uses an exponent when it is below -4 or at
    # least 6 (so 1e6 prints as "1e+06").
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
        # encoding/json trims "e-07" to "e-7" (but keeps "e+21").
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
        elif ch in _HTML_ESCAPES:
            out.append(_HTML_ESCAPES[ch])
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
    """Serialise like Go's ``json.Marshal`` of a decoded JSON value (``map[string]any``)."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_json_string(value))
    elif is_number(value):
        out.append(_json_number(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=str)):
            if i:
                out.append(",")
            out.append(_json_string(str(key)))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


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
