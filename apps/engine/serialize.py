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
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


_SCALARS = frozenset({str, int, float, bool, type(None)})


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    """The fields of a dataclass type, None for any other type (asked once per type: a
    run's first plan encodes a launch for every step of a fan-out)."""
    if cls not in _FIELD_NAMES:
        is_dataclass = dataclasses.is_dataclass(cls)
        _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls)) if is_dataclass else None
    return _FIELD_NAMES[cls]


def to_jsonable(value: Any) -> Any:
    """A JSON-compatible copy of ``value`` (dataclasses become dicts, tuples lists)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    names = _field_names(kind)
    if names is not None:
        return {name: to_jsonable(getattr(value, name)) for name in names}
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
    return _decoder(tp)(data)


Decoder = Callable[[Any], Any]


def _same(data: Any) -> Any:
    return data


def _decoder(tp: Any) -> Decoder:
    """The function that decodes ``tp``, built once per type from its hints (a worker
    decodes a step's launch for every step it claims). Keyed by the type and how it is
    spelled: ``int | float == float | int``, but the first option that decodes wins."""
    return _built(tp, repr(tp))


@cache
def _built(tp: Any, _spelled: str) -> Decoder:
    if tp is Any:
        return _same
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return _union_decoder(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_decoder(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return lambda data: None if data is None else tp(data)
    if origin in (dict, Mapping, typing.Mapping):
        _, value_t = get_args(tp) or (Any, Any)
        value = _decoder(value_t)
        return lambda data: None if data is None else {k: value(v) for k, v in data.items()}
    if origin in (list, Sequence):
        (item_t,) = get_args(tp) or (Any,)
        item = _decoder(item_t)
        return lambda data: None if data is None else [item(v) for v in data]
    if origin is tuple:
        return _tuple_decoder(tp)
    if tp is float:
        return _float
    if isinstance(tp, type) and tp in (str, int, bool):
        return lambda data: _scalar(tp, data)
    return _same


def _float(data: Any) -> Any:
    if isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    return _scalar(float, data)


def _scalar(tp: type, data: Any) -> Any:
    if data is not None and not isinstance(data, tp):
        raise TypeError(f"expected {tp.__name__}, got {type(data).__name__}")
    return data


def _union_decoder(tp: Any) -> Decoder:
    options = [_decoder(a) for a in get_args(tp) if a is not type(None)]

    def decode(data: Any) -> Any:
        if data is None:
            return None
        for option in options:
            try:
                return option(data)
            except (TypeError, ValueError, KeyError):
                continue
        raise ValueError(f"cannot decode {data!r} as {tp}")

    return decode


def _dataclass_decoder(tp: type) -> Decoder:
    resolved: list[list[tuple[str, Decoder]]] = []

    def decode(data: Any) -> Any:
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise TypeError(f"{tp.__name__} expects an object, got {type(data).__name__}")
        if not resolved:  # on first use, as a dataclass may refer to itself; whole, at once
            hints = _hints(tp)
            resolved.append([(f.name, _decoder(hints[f.name])) for f in dataclasses.fields(tp) if f.init])
        return tp(**{name: field(data[name]) for name, field in resolved[0] if name in data})

    return decode


def _tuple_decoder(tp: Any) -> Decoder:
    args = get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        item = _decoder(args[0])
        return lambda data: None if data is None else tuple(item(v) for v in data)
    items = [_decoder(a) for a in args]
    return lambda data: None if data is None else tuple(d(v) for d, v in zip(items, data, strict=True))


def dump(obj: Any) -> Any:
    """Alias of :func:`to_jsonable` for symmetry with :func:`load`."""
    return to_jsonable(obj)


def load(cls: type[T], data: Any) -> T:
    """Rebuild a dataclass instance of ``cls``."""
    result: T = from_jsonable(cls, data)
    return result
