"""The JSONPath subset behind Argo's ``jsonpath(json, path)`` expression function.

Argo uses github.com/evilmonkeyinc/jsonpath: a path that selects one place
(``$.a.b``, ``$.list[0]``) returns that value; a path with a wildcard, a slice, a
filter or a union returns a list. Supported here: ``$``, ``.name``, ``['name']``,
``[n]`` (negative from the end), ``[*]`` / ``.*``, ``[a:b]``, ``[a,b]``, ``..name``
and filters ``[?(@.x == 'v')]`` with ``== != < > <= >=``, ``&&``, ``||``, ``!`` and
existence (``[?(@.x)]``).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ExpressionError

__all__ = ["jsonpath_query"]

_NAME = re.compile(r"[A-Za-z_$][\w$-]*")
_MAX_NODES = 100_000


def _split_bracket(path: str, start: int) -> tuple[str, int]:
    """The text inside ``[...]`` starting at ``start`` (at '['), honouring quotes and nesting."""
    depth, i, quote = 0, start, ""
    while i < len(path):
        ch = path[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return path[start + 1 : i], i + 1
        i += 1
    raise ExpressionError(f"jsonpath: unclosed '[' in '{path}'")


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return list(value)
    return []


def _descendants(value: Any) -> list[Any]:
    out: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        out.append(item)
        if len(out) > _MAX_NODES:
            raise ExpressionError("jsonpath: the document is too large for '..'")
        stack.extend(reversed(_children(item)))
    return out


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise ExpressionError(f"jsonpath: cannot read '{text}' in a filter") from None


def _filter_value(expr: str, item: Any, root: Any) -> Any:
    expr = expr.strip()
    if expr.startswith("@") or expr.startswith("$"):
        base = item if expr[0] == "@" else root
        found, values = _walk(base, expr[1:], root)
        return values[0] if found and values else _Absent
    return _literal(expr)


class _Absent:
    """A filter operand that is not there."""


_COMPARE = re.compile(r"(==|!=|<=|>=|<|>)")


def _split_top(expr: str, sep: str) -> list[str]:
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(expr):
        ch = expr[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and expr.startswith(sep, i):
            parts.append(expr[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(expr[start:])
    return parts


def _filter(expr: str, item: Any, root: Any) -> bool:
    expr = expr.strip()
    ors = _split_top(expr, "||")
    if len(ors) > 1:
        return any(_filter(part, item, root) for part in ors)
    ands = _split_top(expr, "&&")
    if len(ands) > 1:
        return all(_filter(part, item, root) for part in ands)
    if expr.startswith("(") and expr.endswith(")"):
        return _filter(expr[1:-1], item, root)
    if expr.startswith("!"):
        return not _filter(expr[1:], item, root)
    quoted = re.sub(r"'[^']*'|\"[^\"]*\"", lambda m: " " * len(m.group(0)), expr)
    match = _COMPARE.search(quoted)
    if match is None:
        return _filter_value(expr, item, root) is not _Absent
    left = _filter_value(expr[: match.start()], item, root)
    right = _filter_value(expr[match.end() :], item, root)
    op = match.group(1)
    if left is _Absent or right is _Absent:
        return op == "!=" and not (left is _Absent and right is _Absent)
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    if not numbers and not (isinstance(left, str) and isinstance(right, str)):
        return False
    return bool({"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op])


def _walk(value: Any, path: str, root: Any) -> tuple[bool, list[Any]]:
    """Apply ``path`` (after ``$``/``@``) to ``value``: (definite, matches)."""
    current = [value]
    definite = True
    i = 0
    while i < len(path):
        if path.startswith("..", i):
            definite = False
            i += 2
            current = [d for v in current for d in _descendants(v)]
            if i < len(path) and path[i] == "[":
                continue
            match = _NAME.match(path, i) or (re.compile(r"\*").match(path, i))
            if match is None:
                raise ExpressionError(f"jsonpath: expected a name after '..' in '{path}'")
            name = match.group(0)
            i = match.end()
            current = _select_name(current, name)
            continue
        ch = path[i]
        if ch == ".":
            i += 1
            if path.startswith("*", i):
                definite = False
                current = [c for v in current for c in _children(v)]
                i += 1
                continue
            match = _NAME.match(path, i)
            if match is None:
                raise ExpressionError(f"jsonpath: expected a name at {i} in '{path}'")
            current = _select_name(current, match.group(0))
            i = match.end()
            continue
        if ch == "[":
            inner, i = _split_bracket(path, i)
            inner = inner.strip()
            if inner == "*":
                definite = False
                current = [c for v in current for c in _children(v)]
            elif inner.startswith("?"):
                definite = False
                body = inner[1:].strip()
                if body.startswith("(") and body.endswith(")"):
                    body = body[1:-1]
                current = [c for v in current for c in _children(v) if _filter(body, c, root)]
            elif ":" in inner and not inner.startswith(("'", '"')):
                definite = False
                bounds = inner.split(":")
                lo = int(bounds[0]) if bounds[0].strip() else None
                hi = int(bounds[1]) if len(bounds) > 1 and bounds[1].strip() else None
                current = [c for v in current if isinstance(v, list) for c in v[lo:hi]]
            else:
                keys = [k.strip() for k in _split_top(inner, ",")]
                if len(keys) > 1:
                    definite = False
                picked: list[Any] = []
                for v in current:
                    for key in keys:
                        lit = _literal(key)
                        by_key = isinstance(lit, str) and isinstance(v, dict) and lit in v
                        by_index = isinstance(lit, int) and isinstance(v, list) and -len(v) <= lit < len(v)
                        if by_key or by_index:
                            picked.append(v[lit])
                current = picked
            continue
        raise ExpressionError(f"jsonpath: unexpected '{ch}' at {i} in '{path}'")
    return definite, current


def _select_name(current: list[Any], name: str) -> list[Any]:
    if name == "*":
        return [c for v in current for c in _children(v)]
    return [v[name] for v in current if isinstance(v, dict) and name in v]


def jsonpath_query(path: str, data: Any) -> Any:
    """Evaluate ``path`` against ``data`` (decoded JSON)."""
    path = path.strip()
    if not path.startswith("$"):
        raise ExpressionError(f"jsonpath: a path starts with '$', not '{path[:1]}'")
    definite, values = _walk(data, path[1:], data)
    if definite:
        if not values:
            raise ExpressionError(f"jsonpath: '{path}' matches nothing")
        return values[0]
    return values
