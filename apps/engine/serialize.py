"""Turn the engine's frozen dataclasses into JSON and back.

A planned step (:class:`~apps.engine.model.StepLaunch`) is stored with its Task row
when it is created, so that any worker can run it later without re-planning: it
is the resolved task, like the pod spec KFP's driver hands to its launcher. The
codec is driven by the dataclasses' type hints, so it follows their fields as the
engine grows.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    """A JSON-compatible copy of ``value`` (dataclasses become dicts, tuples lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_jsonable(tp: Any, data: Any) -> Any:
    """Rebuild a value of type ``tp`` from :func:`to_jsonable`'s output."""
    if tp is Any or data is None:
        return data
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        for option in options:
            try:
                return from_jsonable(option, data)
            except (TypeError, ValueError, KeyError):
                continue
        raise ValueError(f"cannot decode {data!r} as {tp}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(data, Mapping):
            raise TypeError(f"{tp.__name__} expects an object, got {type(data).__name__}")
        hints = _hints(tp)
        kwargs = {
            f.name: from_jsonable(hints[f.name], data[f.name])
            for f in dataclasses.fields(tp)
            if f.name in data and f.init
        }
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if origin in (dict, Mapping, typing.Mapping) or origin is getattr(typing, "Mapping", None):
        _, value_t = get_args(tp) or (Any, Any)
        return {k: from_jsonable(value_t, v) for k, v in data.items()}
    if origin in (list, Sequence):
        (item_t,) = get_args(tp) or (Any,)
        return [from_jsonable(item_t, v) for v in data]
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_jsonable(args[0], v) for v in data)
        return tuple(from_jsonable(a, v) for a, v in zip(args, data, strict=True))
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if isinstance(tp, type) and tp in (str, int, float, bool) and not isinstance(data, tp):
        raise TypeError(f"expected {tp.__name__}, got {type(data).__name__}")
    return data


def dump(obj: Any) -> Any:
    """Alias of :func:`to_jsonable` for symmetry with :func:`load`."""
    return to_jsonable(obj)


def load(cls: type[T], data: Any) -> T:
    """Rebuild a dataclass instance of ``cls``."""
    result: T = from_jsonable(cls, data)
    return result
