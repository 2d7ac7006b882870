"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), as the API server applies them.

Written here rather than taken from ``jsonpatch``: that package reaches this
virtualenv only as a dependency of moto's cfn-lint (a test tool), and the two
algorithms are short.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["PatchError", "json_patch", "merge_patch"]


class PatchError(ValueError):
    """A patch that cannot be applied to the document."""


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with the merge patch ``patch`` applied (a new value; the inputs are untouched)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise PatchError(f"a JSON pointer must be a string, not {path!r}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, append: bool) -> int:
    if append and token == "-":  # noqa: S105 (a JSON pointer token, not a secret)
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"{path}: {token!r} is not an array index")
    index = int(token)
    limit = len(container) if append else len(container) - 1
    if index > limit:
        raise PatchError(f"{path}: index {index} is out of range")
    return index


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for token in parts[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"{path}: doc is missing key {token!r}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, path, append=False)]
        else:
            raise PatchError(f"{path}: cannot descend into a {type(node).__name__}")
    return node


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    token = parts[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"{path}: doc is missing key {token!r}")
        return parent[token]
    if isinstance(parent, list):
        return parent[_index(parent, token, path, append=False)]
    raise PatchError(f"{path}: cannot descend into a {type(parent).__name__}")


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    token = parts[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, path, append=True), value)
    else:
        raise PatchError(f"{path}: cannot add to a {type(parent).__name__}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, parts, path)
    token = parts[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"{path}: doc is missing key {token!r}")
        return doc, parent.pop(token)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, token, path, append=False))
    raise PatchError(f"{path}: cannot remove from a {type(parent).__name__}")


def json_patch(doc: Any, operations: Any) -> Any:
    """``doc`` with the JSON patch ``operations`` applied, all or nothing (a new value)."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    result = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"not a JSON patch operation: {operation!r}")
        op, path = operation["op"], operation["path"]
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"{op} operation at {path} needs a value")
        if op == "add":
            result = _add(result, path, copy.deepcopy(operation["value"]))
        elif op == "remove":
            result, _ = _remove(result, path)
        elif op == "replace":
            _get(result, path)  # the target must exist
            if _pointer(path):
                result, _ = _remove(result, path)
            result = _add(result, path, copy.deepcopy(operation["value"]))
        elif op in ("move", "copy"):
            source = operation.get("from")
            if not isinstance(source, str):
                raise PatchError(f"{op} operation at {path} needs a 'from' pointer")
            if op == "move":
                if (path + "/").startswith(source + "/") and path != source:
                    raise PatchError(f"cannot move {source} into its own child {path}")
                result, value = _remove(result, source)
            else:
                value = copy.deepcopy(_get(result, source))
            result = _add(result, path, value)
        elif op == "test":
            if _get(result, path) != operation["value"]:
                raise PatchError(f"test operation at {path} failed")
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}")
    return result
