"""Reading request bodies and query parameters the way protojson does.

Fields are accepted under their proto name (``display_name``) or their JSON name
(``displayName``); unknown fields are ignored (grpc-gateway discards them); a
field of the wrong type is a 400 that names it. int64 fields take a number or a
decimal string.

Every JSON body goes through ``KfpJSONParser``: the text must be UTF-8, every
string (and key) valid Unicode without NUL, nesting bounded, numbers finite
(``apps.engine.untrusted``). A refusal is a 400 naming the field, before any view
code runs, so nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from rest_framework.parsers import BaseParser

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


class Body:
    """A JSON object from a request, read field by field with type checks."""

    def __init__(self, data: Any, *, where: str = "") -> None:
        if data is None or data == "":
            data = {}
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{where or 'the request body'} must be a JSON object")
        self.data = data
        self.where = where

    def _name(self, field: str) -> str:
        return f"{self.where}.{field}" if self.where else field

    def raw(self, field: str) -> Any:
        if field in self.data:
            return self.data[field]
        return self.data.get(_camel(field))

    def has(self, field: str) -> bool:
        return self.raw(field) is not None

    def string(self, field: str, *, max_length: int = MAX_TEXT) -> str:
        value = self.raw(field)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise InvalidInput(f"{self._name(field)} must be a string", field=self._name(field))
        if len(value) > max_length:
            raise InvalidInput(
                f"{self._name(field)} is longer than {max_length} characters", field=self._name(field)
            )
        _check_text(value, self._name(field))
        return value

    def boolean(self, field: str) -> bool:
        value = self.raw(field)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise InvalidInput(f"{self._name(field)} must be true or false", field=self._name(field))
        return value

    def int64(self, field: str) -> int | None:
        value = self.raw(field)
        if value is None:
            return None
        if isinstance(value, bool):
            raise InvalidInput(f"{self._name(field)} must be an integer", field=self._name(field))
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or not -(2**63) <= value < 2**63:
            raise InvalidInput(f"{self._name(field)} must be an int64", field=self._name(field))
        return value

    def time(self, field: str) -> datetime | None:
        value = self.raw(field)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise InvalidInput(f"{self._name(field)} must be an RFC3339 time string", field=self._name(field))
        return parse_rfc3339(value, self._name(field))

    def obj(self, field: str) -> Body:
        return Body(self.raw(field), where=self._name(field))

    def mapping(self, field: str) -> dict[str, Any] | None:
        value = self.raw(field)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise InvalidInput(f"{self._name(field)} must be a JSON object", field=self._name(field))
        return dict(value)

    def enum(self, field: str, allowed: Mapping[str | int, str]) -> str | None:
        """An enum given by name or number; None when unset."""
        value = self.raw(field)
        if value is None:
            return None
        if not isinstance(value, bool) and value in allowed:
            return allowed[value]
        names = ", ".join(sorted({v for v in allowed.values()}))
        raise InvalidInput(f"{self._name(field)} must be one of {names}", field=self._name(field))


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
    _check_text(value, name)
    return str(value)


def _check_text(value: str, name: str) -> None:
    problem = text_problem(value)
    if problem is not None:
        raise InvalidInput(f"{name} {problem}", field=name)
