"""Checks for values that arrive from outside: text, JSON and times.

Every edge runs what it receives through these (the REST API's JSON parser, its
filters and page tokens, the web forms, uploaded YAML, runtime parameters), so a
value Canal cannot store, render or hash is refused where it arrives, with the
path of the field, instead of failing later in a database driver, a JSON renderer
or the step cache's fingerprint. (Issue 9: a lone surrogate in a run parameter was
committed, then wedged the run in PENDING and broke every page that listed it.)

* **Text** must be encodable as UTF-8 and hold no NUL character. A Python string
  can hold a lone surrogate (JSON's ``"\\ud800"`` escape decodes to one) that no
  UTF-8 encoder accepts; NUL cannot travel through argv, C strings or some
  databases.
* **JSON** is nested at most ``MAX_JSON_DEPTH`` levels, holds only JSON types and
  finite numbers (``1e400`` parses to infinity, which JSON cannot carry back out).
  The check walks the value with an explicit stack, never recursion, and parsing a
  document nested deeper than the interpreter's recursion limit is reported as too
  deep rather than crashing.
* **Times** lie in ``[TIME_MIN, TIME_MAX)``: from the Unix epoch (Canal stores no
  earlier instant, and KFP's API counts in Unix seconds) to the year 9000. The
  upper bound keeps a margin of centuries below ``datetime.max`` (9999-12-31), so
  adding an interval (at most a century), a time zone offset or a second to an
  accepted time never overflows.

Pure: no Django; the API, forms, importers and engine all call it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from apps.engine.spec import Path, format_path

#: Deep enough for any real request: KFP's own corpus of compiled pipelines peaks at
#: 15 levels, and a run body wraps an inline spec in two more.
MAX_JSON_DEPTH = 100
TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(9000, 1, 1, tzinfo=UTC)
TIME_MIN_SECONDS = int(TIME_MIN.timestamp())
TIME_MAX_SECONDS = int(TIME_MAX.timestamp())
TIME_RANGE_TEXT = "between 1970-01-01T00:00:00Z and 9000-01-01T00:00:00Z"


class InputError(ValueError):
    """A value from outside that Canal refuses; ``path`` is where it was found."""

    def __init__(self, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    @property
    def field(self) -> str:
        """The path as text (``runtime_config.parameters.msg``), or "" at the top."""
        return format_path(self.path)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.path else self.message


def text_problem(text: str, *, allow_nul: bool = False) -> str | None:
    """Why ``text`` cannot be accepted, or None when it is fine."""
    if not allow_nul and "\x00" in text:
        return f"contains a NUL character (at character {text.index(chr(0)) + 1})"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # The escape, never the character itself: the message must be encodable too.
        code = ord(text[exc.start])
        return (
            f"contains a lone surrogate (\\u{code:04x}) at character {exc.start + 1}, which is not "
            "valid Unicode text and cannot be encoded as UTF-8"
        )
    return None


def check_text(text: str, path: Path = (), *, allow_nul: bool = False) -> str:
    """Return ``text`` if it is acceptable; raise InputError otherwise."""
    problem = text_problem(text, allow_nul=allow_nul)
    if problem is not None:
        raise InputError(problem, path)
    return text


def check_json(
    value: Any,
    path: Path = (),
    *,
    max_depth: int = MAX_JSON_DEPTH,
    json_only: bool = True,
    lenient: bool = False,
) -> None:
    """Raise InputError for the first unacceptable part of a JSON-like value: a bad
    string (or key), a non-finite number, nesting deeper than ``max_depth`` (the
    top-level value is depth 1) or, with ``json_only``, a type JSON does not have
    (without it such values are skipped: a form's dates and files).

    ``lenient`` refuses only what Canal cannot store, render or hash (lone
    surrogates, excessive depth) and lets NUL and non-finite numbers through: for a
    step's outputs, which KFP records as they are and Canal renders safely."""
    stack: list[tuple[Any, Path, int]] = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, where, allow_nul=lenient)
        elif isinstance(item, bool) or item is None or isinstance(item, int):
            continue
        elif isinstance(item, float):
            if not lenient and not math.isfinite(item):
                raise InputError("numbers must be finite (NaN and infinity cannot be represented)", where)
        elif isinstance(item, Mapping | list | tuple):
            if depth > max_depth:
                raise InputError(f"JSON is nested deeper than {max_depth} levels", where)
            if isinstance(item, Mapping):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InputError(f"object keys must be strings, got {type(key).__name__}", where)
                    check_text(key, (*where, key), allow_nul=lenient)
                    stack.append((child, (*where, key), depth + 1))
            else:
                stack.extend((child, (*where, i), depth + 1) for i, child in enumerate(item))
        elif json_only:
            raise InputError(f"{type(item).__name__} is not a JSON value", where)


def _refuse_constant(name: str) -> Any:
    raise InputError(f"{name} is not valid JSON (numbers must be finite)")


def loads_json(text: str | bytes, path: Path = (), *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from outside and check it with :func:`check_json`.

    Bytes must be UTF-8. Raises InputError, never RecursionError: the C parser stops
    at the interpreter's recursion limit, and a document that deep is simply too deep.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"not valid UTF-8: byte 0x{text[exc.start]:02x} at byte offset {exc.start}", path
            ) from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InputError(f"JSON is nested deeper than {max_depth} levels", path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", path) from None
    except InputError as exc:
        raise InputError(exc.message, path) from None
    except ValueError as exc:  # e.g. an integer with more digits than int() converts
        raise InputError(f"not valid JSON: {exc}", path) from None
    check_json(value, path, max_depth=max_depth)
    return value


def time_problem(value: datetime) -> str | None:
    """Why an aware ``value`` is out of the supported range, or None."""
    # Aware comparisons do not overflow, unlike converting 9999-12-31T23:59:59-01:00 to UTC.
    if TIME_MIN <= value < TIME_MAX:
        return None
    return f"{value.isoformat()} is out of range: times must be {TIME_RANGE_TEXT}"


def check_time(value: datetime, path: Path = ()) -> datetime:
    """Return an aware ``value`` if it is in range; raise InputError otherwise."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError("a time must carry a time zone", path)
    problem = time_problem(value)
    if problem is not None:
        raise InputError(problem, path)
    return value


def check_unix_seconds(seconds: int, path: Path = ()) -> int:
    """Return Unix ``seconds`` if they stand for an in-range time; raise InputError otherwise."""
    if TIME_MIN_SECONDS <= seconds < TIME_MAX_SECONDS:
        return seconds
    raise InputError(
        f"Unix time {seconds} is out of range: times must be {TIME_RANGE_TEXT} "
        f"({TIME_MIN_SECONDS} to {TIME_MAX_SECONDS - 1} seconds)",
        path,
    )
