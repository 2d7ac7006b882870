"""Loop expansion (``withItems``, ``withParam``, ``withSequence``) and the names Argo gives loop nodes."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import InterpreterError
from .exprlang import format_result

__all__ = [
    "ExpansionError",
    "expand_sequence",
    "item_name",
    "item_scope",
    "loop_index",
    "parse_with_param",
]


class ExpansionError(InterpreterError):
    """A loop could not be expanded (bad JSON, a bad sequence, too many items)."""


def _text(value: Any) -> str:
    """How Argo prints one item value (Item.String): JSON, strings without quotes."""
    if isinstance(value, str):
        return value
    return format_result(value)


def item_name(name: str, index: int, item: Any) -> str:
    """``name(index:description)`` as Argo's generateNodeName writes it."""
    if isinstance(item, Mapping):
        desc = ",".join(sorted(f"{k}:{_text(v)}" for k, v in item.items()))
    elif isinstance(item, list):
        desc = "[" + " ".join(_text(v) for v in item) + "]"
    else:
        desc = _text(item)
    desc = desc.replace("(", "").replace(")", "")
    return f"{name}({index}:{desc})"


def item_scope(item: Any) -> dict[str, str]:
    """The ``item`` / ``item.<key>`` variables of one loop iteration."""
    if isinstance(item, Mapping):
        out = {f"item.{k}": _text(v) for k, v in item.items()}
        out["item"] = format_result(dict(item))
        return out
    if isinstance(item, list):
        return {"item": format_result(list(item))}
    if item is None:
        raise ExpansionError(
            "withItems/withParam items must be strings, numbers, booleans, lists or maps, not null"
        )
    return {"item": _text(item)}


def parse_with_param(value: Any, *, limit: int) -> list[Any]:
    """The items of a substituted ``withParam`` (a JSON list)."""
    if isinstance(value, list):
        items = value
    else:
        text = str(value)
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExpansionError(
                f"withParam value could not be parsed as a JSON list: {text.strip()[:200]}: {exc}"
            ) from None
        if not isinstance(items, list):
            raise ExpansionError(f"withParam value could not be parsed as a JSON list: {text.strip()[:200]}")
    if len(items) > limit:
        raise ExpansionError(f"withParam expands to {len(items):,} items; at most {limit:,} are allowed")
    return items


_GO_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([vdsxXobc%])")


def _go_format(fmt: str, number: int) -> str:
    """Go's fmt.Sprintf for one integer argument, as withSequence's ``format`` uses it."""

    def one(match: re.Match[str]) -> str:
        flags, width, precision, verb = match.groups()
        if verb == "%":
            return "%"
        py = {"v": "d", "s": "d", "c": "c"}.get(verb, verb)
        spec = "%" + flags + width + (f".{precision}" if precision else "") + py
        return spec % number

    return _GO_VERB.sub(one, fmt)


def _int(value: Any, field: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ExpansionError(f"withSequence.{field} must be an integer, not {value!r}") from None


def expand_sequence(sequence: Mapping[str, Any], *, limit: int) -> list[str]:
    """The items of a substituted ``withSequence`` (strings, as Argo makes them)."""
    start = _int(sequence["start"], "start") if sequence.get("start") not in (None, "") else 0
    if sequence.get("end") not in (None, ""):
        end = _int(sequence["end"], "end")
    elif sequence.get("count") not in (None, ""):
        count = _int(sequence["count"], "count")
        if count < 0:
            raise ExpansionError(f"withSequence.count must not be negative ({count})")
        if count == 0:
            return []
        end = start + count - 1
    else:
        raise ExpansionError("neither end nor count was specified in withSequence")
    size = abs(end - start) + 1
    if size > limit:
        raise ExpansionError(f"withSequence expands to {size:,} items; at most {limit:,} are allowed")
    fmt = str(sequence.get("format") or "%d")
    step = 1 if start <= end else -1
    return [_go_format(fmt, i) for i in range(start, end + step, step)]


def loop_index(node_name: str) -> int:
    """The loop index of an expanded node name (``a.b(3:x)`` -> 3); -1 if it has none."""
    tail = node_name.rsplit("(", 1)[-1]
    head = tail.split(":", 1)[0]
    try:
        return int(head)
    except ValueError:
        return -1
