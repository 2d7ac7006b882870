"""Label and field selectors, as ``labelSelector`` and ``fieldSelector`` query parameters spell them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from apps.backends.argo.emulator.errors import ApiError

__all__ = ["Selector", "parse_field_selector", "parse_label_selector"]

Selector = Callable[[Mapping[str, Any]], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s+\(([^)]*)\)$")
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")


def _split(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def _requirement(text: str) -> Selector:
    match = _SET.match(text)
    if match:
        key, operator = match.group(1), match.group(3)
        values = {value.strip() for value in match.group(4).split(",") if value.strip()}
        if operator == "in":
            return lambda obj: _labels(obj).get(key) in values
        return lambda obj: _labels(obj).get(key) not in values
    match = _EQUALITY.match(text)
    if match:
        key, operator, value = match.group(1), match.group(3), match.group(4)
        if operator == "!=":
            return lambda obj: _labels(obj).get(key) != value
        return lambda obj: _labels(obj).get(key) == value
    match = _EXISTS.match(text)
    if match:
        negated, key = match.group(1) == "!", match.group(2)
        return lambda obj: (key in _labels(obj)) != negated
    raise ApiError.bad_request(f"unable to parse requirement: {text!r}")


def parse_label_selector(text: str | None) -> Selector:
    """A predicate on objects from a label selector (``a=b,c!=d,e,!f,g in (x,y),h notin (z)``)."""
    requirements = [_requirement(part) for part in _split(text or "")]
    return lambda obj: all(requirement(obj) for requirement in requirements)


def _field(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def _field_test(path: str, value: str, *, negated: bool) -> Selector:
    def test(obj: Mapping[str, Any]) -> bool:
        return (_field(obj, path) == value) != negated

    return test


def parse_field_selector(text: str | None, supported: frozenset[str]) -> Selector:
    """A predicate from a field selector (``metadata.name=x,status.phase!=Running``) over ``supported``."""
    tests: list[Selector] = []
    for part in _split(text or ""):
        match = re.match(r"^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$", part)
        if not match:
            raise ApiError.bad_request(f"invalid selector: {part!r}; can't understand {part!r}")
        path, operator, value = match.groups()
        if path not in supported:
            raise ApiError.bad_request(f'field label not supported: "{path}"')
        tests.append(_field_test(path, value, negated=operator == "!="))
    return lambda obj: all(test(obj) for test in tests)
