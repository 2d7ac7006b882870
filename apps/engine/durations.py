"""Parsing of protobuf Duration values as they appear in KFP IR (``"3s"``, ``"0.5s"``, ``"1h"``)."""

from __future__ import annotations

import math
import re
from typing import Any

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class DurationError(ValueError):
    """A value that is not a duration."""


def parse_duration(value: Any) -> float:
    """Return the duration in seconds.

    Accepts the protobuf JSON form (``"3s"``, ``"1.5s"``), Go-style compound durations
    (``"1m30s"``, as Argo writes them), a bare number of seconds, and the
    ``{"seconds": .., "nanos": ..}`` object form.
    """
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, dict):
        try:
            seconds = float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
        except (TypeError, ValueError) as exc:
            raise DurationError(f"{value!r} is not a duration") from exc
    elif isinstance(value, str):
        text = value.strip()
        sign = 1.0
        if text.startswith("-"):
            sign, text = -1.0, text[1:]
        if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", text):
            seconds = sign * float(text)
        else:
            pos, total = 0, 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                total += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise DurationError(f"{value!r} is not a duration like '30s', '1.5s' or '1m30s'")
            seconds = sign * total
    else:
        raise DurationError(f"{value!r} is not a duration")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise DurationError(f"{value!r} is not a non-negative duration")
    return seconds
