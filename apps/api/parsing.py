"""Reading requests the way KFP's gateway (protojson) does, with DRF serializers.

``read_body`` validates a JSON body with a serializer of ``apps.api.schema``, whose
fields are the ``Message`` and field classes below. They follow protojson: a field is
accepted under its proto name (``display_name``) or its JSON name (``displayName``);
unknown fields are ignored; ``null`` is unset; a string is only a JSON string (never a
number), int64 takes a number or a decimal string, an enum its name or number; a
wrong type is a 400 that names the field's path. Rendering (``Message.data``) leaves
unset fields out, as proto3 JSON does (``apps.api.wire``).

Every JSON body goes through ``KfpJSONParser`` first: the text must be UTF-8, every
string (and key) valid Unicode without NUL, nesting bounded, numbers finite
(``apps.engine.untrusted``). A refusal is a 400 naming the field, before any view
code runs, so nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.parsers import BaseParser

from apps.api import wire
from apps.api.listing import parse_rfc3339
from apps.core.exceptions import InvalidInput
from apps.engine.untrusted import InputError, loads_json, text_problem

MAX_TEXT = 64 * 1024


class KfpJSONParser(BaseParser):
    """``application/json`` bodies, checked as they are parsed (see the module docstring)."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        # DRF reads the stream itself, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check
        # (that one guards request.body); apply the same bound here.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise InvalidInput(f"the request body is larger than {limit} bytes")
        try:
            return loads_json(raw)
        except InputError as exc:
            raise InvalidInput(f"{exc.field or 'request body'}: {exc.message}", field=exc.field) from None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# A proto message (no docstring: drf-spectacular would describe every message with it).
class Message(serializers.Serializer[Any]):
    keep: tuple[str, ...] = ()  # fields written even when unset (a List response's)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"required": False, **kwargs})

    @classmethod
    def many_init(cls, *args: Any, **kwargs: Any) -> Any:
        return super().many_init(*args, **{"required": False, **kwargs})

    def to_internal_value(self, data: Any) -> Any:
        if data is None or data == "":
            data = {}
        if not isinstance(data, Mapping):
            raise serializers.ValidationError("must be a JSON object")
        names: list[str] = list(self.fields)
        given = {
            name: data.get(name) if data.get(name) is not None else data.get(_camel(name)) for name in names
        }
        return super().to_internal_value({name: value for name, value in given.items() if value is not None})

    def to_representation(self, instance: Any) -> Any:
        written = super().to_representation(instance)
        return {key: value for key, value in written.items() if key in self.keep or not wire.is_unset(value)}


class Text(serializers.CharField):
    """A proto string: only a JSON string, kept as sent, valid text, bounded."""

    default_error_messages = {
        "invalid": "must be a string",
        "max_length": "is longer than {max_length} characters",
    }

    def __init__(self, help_text: str = "", max_length: int | None = MAX_TEXT, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(
            allow_blank=True, trim_whitespace=False, help_text=help_text, max_length=max_length, **kwargs
        )

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        problem = text_problem(data)
        if problem is not None:
            raise serializers.ValidationError(problem)
        return data


class Int64(Text):
    """proto3 JSON's int64: a number or a decimal string in, a decimal string out."""

    default_error_messages = {"invalid": "must be an int64"}

    def __init__(self, help_text: str = "", **kwargs: Any) -> None:
        super().__init__(help_text + " (int64, written as a string)", max_length=None, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and data.strip().lstrip("-").isdigit():
            data = int(data.strip())
        elif isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int) or not -(2**63) <= data < 2**63:
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> str:
        return str(int(value))


class Time(serializers.DateTimeField):
    """A google.protobuf.Timestamp: RFC3339 in (with a zone), RFC3339 in UTC out."""

    default_error_messages = {"invalid": "must be an RFC3339 time string"}

    def __init__(self, help_text: str = "RFC3339 time (UTC).", **kwargs: Any) -> None:
        super().__init__(required=False, help_text=help_text, **kwargs)

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str):
            self.fail("invalid")
        if not value:
            return None
        try:
            return parse_rfc3339(value, "")
        except InvalidInput as exc:
            raise serializers.ValidationError(
                f"must be an RFC3339 time ({exc.message.lstrip(': ')})"
            ) from None

    def to_representation(self, value: Any) -> Any:
        return wire.timestamp(value)


class Enum(serializers.ChoiceField):
    """A proto enum, by name or (``numbered``: the names are in proto order) by number."""

    def __init__(self, choices: list[Any], help_text: str = "", *, numbered: bool = True) -> None:
        super().__init__(choices=choices, required=False, help_text=help_text)
        self.names, self.numbered = [str(name) for name in self.choices], numbered

    def to_internal_value(self, data: Any) -> Any:
        if self.numbered and type(data) is int and 0 <= data < len(self.names):
            return self.names[data]
        if data == "" or (isinstance(data, str) and data in self.names):
            return data
        raise serializers.ValidationError(f"must be one of {', '.join(sorted(self.names))}")


class Flag(serializers.BooleanField):
    """A proto bool: only JSON's true or false."""

    default_error_messages = {"invalid": "must be true or false"}

    def __init__(self, help_text: str = "") -> None:
        super().__init__(required=False, help_text=help_text)

    def to_internal_value(self, data: Any) -> Any:
        if type(data) is not bool:
            self.fail("invalid")
        return data


@extend_schema_field(OpenApiTypes.OBJECT)
class Struct(serializers.JSONField):
    """A JSON object passed through as is (google.protobuf.Struct)."""

    default_error_messages = {"invalid": "must be a JSON object"}

    def __init__(self, help_text: str = "", **kwargs: Any) -> None:
        super().__init__(help_text=help_text, **{"required": False, **kwargs})

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            self.fail("invalid")
        return dict(data)


class Map(serializers.DictField):
    """A proto map: a JSON object."""

    default_error_messages = {"not_a_dict": "must be a JSON object"}

    def __init__(self, child: serializers.Field[Any, Any, Any, Any], help_text: str = "") -> None:
        super().__init__(child=child, required=False, help_text=help_text)


def read_body(request: Any, serializer: type[serializers.Serializer[Any]]) -> dict[str, Any]:
    """The request's JSON body, validated by ``serializer``: the fields given (not null)."""
    data = {} if request.data is None or request.data == "" else request.data
    if not isinstance(data, Mapping):
        raise InvalidInput("the request body must be a JSON object")
    checked = serializer(data=data)
    if not checked.is_valid():
        path, problem = _first_error(checked.errors, "")
        raise InvalidInput(f"{path or 'the request body'} {problem}", field=path or None)
    return dict(checked.validated_data)


def _first_error(detail: Any, path: str) -> tuple[str, str]:
    """The first error of DRF's nested detail, with the path of the field it is about."""
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if value:
                name = "" if key == "non_field_errors" else str(key)
                return _first_error(value, f"{path}.{name}" if path and name else path or name)
    if isinstance(detail, list) and detail and not isinstance(detail[0], str):
        for index, item in enumerate(detail):
            if item:
                return _first_error(item, f"{path}.{index}" if path else str(index))
    if isinstance(detail, list) and detail:
        return path, str(detail[0])
    return path, str(detail)


def query_flag(params: Mapping[str, Any], name: str) -> bool:
    """A boolean query parameter: true/false/1/0 (absent is false)."""
    value = (params.get(name) or "").strip().lower()
    if value in ("", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise InvalidInput(f"{name} must be true or false", field=name)


def query_text(params: Mapping[str, Any], name: str, *, max_length: int = 1024) -> str:
    value = params.get(name) or ""
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", field=name)
    problem = text_problem(value)
    if problem is not None:
        raise InvalidInput(f"{name} {problem}", field=name)
    return str(value)
