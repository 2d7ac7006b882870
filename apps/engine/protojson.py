"""JSON read into a protobuf message, refusing bad input with a readable message and a path.

``json_format.ParseDict`` (unknown fields refused) is what builds the message, so the format
is the one ``.proto`` file defines. Its errors, though, name paths in protobuf's own syntax
and say little ("Expected true or false without quotes"), and proto3 has no required fields.
So :func:`parse` first walks the JSON along the message's descriptor and reports the first
problem in document order (the order a person fixing the file reads it) with a path of keys
and list indices; :class:`Rules` adds what proto3 cannot say (required fields, oneofs that
must be set, wording for a few fields).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

Path = tuple[str | int, ...]
M = TypeVar("M", bound=Message)

_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9.eE+-]+|NaN|-?Infinity")
_SURROGATE = re.compile("[\ud800-\udfff]")
_DURATION = re.compile(r"-?[0-9]+(\.[0-9]{1,9})?s")
_INT_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOAT_TYPES = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})


class ShapeError(ValueError):
    """The JSON does not fit the message; ``path`` locates the problem."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


@dataclass(frozen=True)
class Rules:
    """What a format needs beyond its ``.proto`` file. Keys are full message names.

    ``required``: JSON field names that must be present (a required string must not be
    empty). ``required_oneofs``: oneofs that must have a member set. ``wording``: a message
    for ``"<message>.<field>"`` (wrong type or empty) or ``"<message>.<oneof>"``.
    ``embedded``: ``"<message>.<field>"`` typed ``Struct`` in the proto that holds another
    message (checked as that message; the caller parses it separately).
    """

    required: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    required_oneofs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    wording: Mapping[str, str] = field(default_factory=dict)
    embedded: Mapping[str, Descriptor] = field(default_factory=dict)


def describe_value(value: Any) -> str:
    """A short, safe description of a value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        if not value:
            return "an empty string"
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the string {shown!r}"
    return repr(value)


def parse(value: Any, message_type: type[M], rules: Rules, path: Path = ()) -> M:
    """``value`` checked against ``message_type`` and ``rules``, then parsed; or ShapeError."""
    _Checker(rules).message(value, message_type.DESCRIPTOR, path)
    return build(value, message_type, path)


def build(value: Any, message_type: type[M], path: Path = ()) -> M:
    """``json_format.ParseDict`` with unknown fields refused; its errors become ShapeError."""
    message: M = message_type()
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        # Only what the walk does not look at (an int32 out of range, say) gets here.
        raise ShapeError(f"not a valid {message_type.DESCRIPTOR.name}: {exc}", path) from None
    return message


@functools.cache
def _fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    return {f.json_name: f for f in descriptor.fields}


def _quoted(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


class _Checker:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def message(self, value: Any, descriptor: Descriptor, path: Path) -> None:
        name = descriptor.full_name
        if name.startswith("google.protobuf."):
            self._well_known(value, name, path)
            return
        if not isinstance(value, dict):
            raise ShapeError(f"expected a mapping, got {describe_value(value)}", path)
        fields = _fields(descriptor)
        unknown = [k for k in value if k not in fields]
        # A missing field is not reported next to an unknown one: that is almost always
        # the same field, misspelled, and the unknown-field message says so.
        if not unknown:
            for required in self.rules.required.get(name, ()):
                if required not in value:
                    raise ShapeError(f"missing required field '{required}'", path)
        for oneof in descriptor.oneofs:
            members = [f.json_name for f in oneof.fields]
            present = [m for m in members if m in value]
            must = oneof.name in self.rules.required_oneofs.get(name, ())
            if len(present) > 1 or (must and not present and not unknown):
                default = (
                    f"needs exactly one of {_quoted(members)}"
                    if must
                    else f"allows only one of {_quoted(members)}"
                )
                raise ShapeError(self.rules.wording.get(f"{name}.{oneof.name}", default), path)
        for key, item in value.items():
            fd = fields.get(key)
            if fd is None:
                raise ShapeError(self._unknown(str(key), sorted(fields)), (*path, key))
            self.field(item, fd, (*path, key))

    def _unknown(self, key: str, known: list[str]) -> str:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            return f"unknown field '{key}' (did you mean '{close[0]}'?)"
        if known and len(known) <= 12:
            return f"unknown field '{key}'; allowed fields here: {', '.join(known)}"
        return f"unknown field '{key}'"

    def field(self, value: Any, fd: FieldDescriptor, path: Path) -> None:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            if not isinstance(value, dict):
                raise ShapeError(f"expected a mapping, got {describe_value(value)}", path)
            value_field = fd.message_type.fields_by_name["value"]
            for key, item in value.items():
                if not key:
                    raise ShapeError("a name here must not be empty", (*path, key))
                self.single(item, value_field, (*path, key))
        elif fd.is_repeated:
            if not isinstance(value, list):
                raise ShapeError(f"expected a list, got {describe_value(value)}", path)
            for index, item in enumerate(value):
                self.single(item, fd, (*path, index))
        else:
            self.single(value, fd, path)

    def single(self, value: Any, fd: FieldDescriptor, path: Path) -> None:
        owner = fd.containing_type.full_name
        key = f"{owner}.{fd.json_name}"
        embedded = self.rules.embedded.get(key)
        if embedded is not None:
            self.message(value, embedded, path)
            return
        if fd.message_type is not None:
            self.message(value, fd.message_type, path)
            return
        kind = fd.type
        ok: bool
        if kind == FieldDescriptor.TYPE_STRING:
            ok, expected = isinstance(value, str), "a string"
            if ok and not value and fd.json_name in self.rules.required.get(owner, ()):
                ok, expected = False, "a non-empty string"
            if ok and not value.isascii() and _SURROGATE.search(value):
                # Protobuf strings are UTF-8; a lone surrogate (possible in a Python str
                # read from JSON) is not text.
                raise ShapeError("holds a lone surrogate, which is not valid text", path)
        elif kind == FieldDescriptor.TYPE_BOOL:
            ok, expected = isinstance(value, bool), "true or false"
        elif kind in _INT_TYPES:
            ok, expected = _is_integer(value), "an integer"
        elif kind in _FLOAT_TYPES:
            ok, expected = _is_number(value), "a number"
        elif kind == FieldDescriptor.TYPE_ENUM:
            names = [v.name for v in fd.enum_type.values]
            ok = (isinstance(value, str) and value in names) or (
                isinstance(value, int)
                and not isinstance(value, bool)
                and value in fd.enum_type.values_by_number
            )
            expected = "one of " + ", ".join(names)
            if not ok:
                raise ShapeError(f"must be {expected} (got {describe_value(value)})", path)
        else:  # bytes
            ok, expected = isinstance(value, str), "a base64 string"
        if not ok:
            custom = self.rules.wording.get(key)
            text = (
                f"{custom} (got {describe_value(value)})"
                if custom
                else f"expected {expected}, got {describe_value(value)}"
            )
            raise ShapeError(text, path)

    def _well_known(self, value: Any, name: str, path: Path) -> None:
        if name == "google.protobuf.Struct":
            if not isinstance(value, dict):
                raise ShapeError(f"expected a mapping, got {describe_value(value)}", path)
        elif name == "google.protobuf.ListValue":
            if not isinstance(value, list):
                raise ShapeError(f"expected a list, got {describe_value(value)}", path)
        elif name == "google.protobuf.Duration" and not (
            isinstance(value, str) and _DURATION.fullmatch(value)
        ):
            raise ShapeError(
                f"must be a duration in seconds such as '30s' or '1.5s' (got {describe_value(value)})", path
            )
        # google.protobuf.Value holds any JSON; other well-known types are left to ParseDict.


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, str) and _INTEGER.fullmatch(value) is not None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and _NUMBER.fullmatch(value) is not None
