"""``{{…}}`` substitution, as Argo's util/template does it.

Argo marshals a template to JSON and replaces every ``{{tag}}`` in the text; the
interpreter walks the structure instead and replaces inside every string (and
mapping key), which gives the same result without JSON escaping. A *simple* tag
(``{{inputs.parameters.x}}``) is looked up in a flat scope (``name -> str``). A
missing name is left as it is (a later pass may know it) unless it starts with a
*strict* prefix (``steps``, ``tasks``), which must resolve. A present-but-``None``
value is an absent optional (the output of a skipped step with no default) and is
an error. ``{{=expr}}`` tags are evaluated with :mod:`exprlang`; if the expression
reads a name that is not known yet it is left for later, like Argo does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import exprlang
from .errors import ExpressionError, InterpreterError

__all__ = [
    "SubstitutionError",
    "find_tags",
    "has_tags",
    "substitute",
    "substitute_string",
    "unresolved_tags",
]

_MAX_RESULT = 4 * 1024 * 1024  # characters one string may grow to


class SubstitutionError(InterpreterError):
    """A tag could not be substituted (a strict name is missing, an absent optional, a bad expression)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def find_tags(text: str) -> list[tuple[int, int, str]]:
    """(start, end, inner) of every ``{{…}}`` in ``text``, as fasttemplate finds them."""
    out: list[tuple[int, int, str]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            return out
        end = text.find("}}", start + 2)
        if end < 0:
            return out
        out.append((start, end + 2, text[start + 2 : end]))
        pos = end + 2


def has_tags(value: Any) -> bool:
    """Whether any string inside ``value`` holds a ``{{`` … ``}}`` tag."""
    if isinstance(value, str):
        return bool(find_tags(value))
    if isinstance(value, Mapping):
        return any(has_tags(k) or has_tags(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_tags(v) for v in value)
    return False


def unresolved_tags(value: Any, *, prefixes: Sequence[str] = ()) -> list[str]:
    """The tags left in ``value`` (optionally only those whose name starts with ``prefixes``)."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            for _, _, inner in find_tags(v):
                name = inner.strip()
                if not prefixes or any(name == p or name.startswith(p + ".") for p in prefixes):
                    out.append(name)
        elif isinstance(v, Mapping):
            for k, item in v.items():
                walk(k)
                walk(item)
        elif isinstance(v, list | tuple):
            for item in v:
                walk(item)

    walk(value)
    return out


def _strict(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


class _Expressions:
    """The expression environment for one substitution pass, built on first use."""

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.scope = scope
        self._env: dict[str, Any] | None = None

    @property
    def env(self) -> dict[str, Any]:
        if self._env is None:
            flat = {k: v for k, v in self.scope.items() if v is None or isinstance(v, str)}
            self._env = exprlang.expand_env(flat)
        return self._env


def _expression(
    inner: str, scope: Mapping[str, Any], exprs: _Expressions, strict: Sequence[str], lenient: bool
) -> str | None:
    """The value of ``{{=…}}``; None leaves the tag for a later pass."""
    text = inner[1:]
    try:
        node = exprlang.parse(text)
        for path in exprlang.referenced_paths(node):
            if _known(path, scope):
                continue
            if _strict(path, strict):
                raise SubstitutionError(f"failed to evaluate expression: {path} is missing", missing=True)
            return None
        value = exprlang.evaluate(node, exprs.env)
    except exprlang.MissingVariable as exc:
        if _strict(exc.name, strict):
            raise SubstitutionError(
                f"failed to evaluate expression: {exc.name} is missing", missing=True
            ) from None
        return None
    except ExpressionError as exc:
        if lenient:
            return None
        raise SubstitutionError(f"failed to evaluate expression '{text.strip()}': {exc}") from None
    if value is None:
        if lenient:
            return None
        raise SubstitutionError(f"failed to evaluate expression '{text.strip()}': it evaluated to nil")
    return exprlang.format_result(value)


def _known(path: str, scope: Mapping[str, Any]) -> bool:
    if path in scope:
        return True
    prefix = path + "."
    return any(key.startswith(prefix) for key in scope)


def substitute_string(
    text: str,
    scope: Mapping[str, Any],
    *,
    strict: Sequence[str] = (),
    lenient_expressions: bool = False,
    _exprs: _Expressions | None = None,
) -> str:
    """``text`` with its tags replaced from ``scope`` (see the module docstring)."""
    tags = find_tags(text)
    if not tags:
        return text
    exprs = _exprs or _Expressions(scope)
    parts: list[str] = []
    pos = 0
    size = 0
    for start, end, inner in tags:
        parts.append(text[pos:start])
        replacement: str | None
        if inner.startswith("="):
            replacement = _expression(inner, scope, exprs, strict, lenient_expressions)
        else:
            name = inner.strip()
            if name in scope:
                value = scope[name]
                if value is None:
                    raise SubstitutionError(
                        f"unable to substitute {{{{{inner}}}}}: output is an absent optional "
                        "(skipped/omitted node with no default)"
                    )
                if not isinstance(value, str):
                    if ".outputs.artifacts." in name or name.startswith("inputs.artifacts."):
                        replacement = None  # artifacts resolve through 'from', not as text
                    else:
                        raise SubstitutionError(f"failed to resolve {{{{{inner}}}}} to string")
                else:
                    replacement = value
            elif _strict(name, strict) and ".outputs.artifacts." not in name:
                raise SubstitutionError(f"failed to resolve {{{{{inner}}}}}", missing=True)
            else:
                replacement = None
        chunk = text[start:end] if replacement is None else replacement
        size += len(chunk) + (start - pos)
        if size > _MAX_RESULT:
            raise SubstitutionError(f"substitution would make a value longer than {_MAX_RESULT:,} characters")
        parts.append(chunk)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def substitute(
    value: Any,
    scope: Mapping[str, Any],
    *,
    strict: Sequence[str] = (),
    lenient_expressions: bool = False,
    skip_keys: Sequence[str] = (),
) -> Any:
    """A copy of a JSON-shaped ``value`` with every string substituted.

    ``skip_keys`` are mapping keys whose values are copied untouched (Argo resolves
    hooks, for example, later and in another scope).
    """
    exprs = _Expressions(scope)

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return substitute_string(
                v, scope, strict=strict, lenient_expressions=lenient_expressions, _exprs=exprs
            )
        if isinstance(v, Mapping):
            out: dict[str, Any] = {}
            for k, item in v.items():
                if k in skip_keys:
                    out[k] = item
                    continue
                key = walk(k) if isinstance(k, str) and "{{" in k else k
                out[key] = walk(item)
            return out
        if isinstance(v, list | tuple):
            return [walk(item) for item in v]
        return v

    return walk(value)


_VAR = re.compile(r"^[\w.\-\[\]'\"]+$")
