"""Text that can always be stored and sent.

A Python string can hold a lone surrogate (JSON's ``"\\ud800"`` escape decodes to one)
that no UTF-8 encoder accepts: the database driver, the template response and the JSON
renderer all raise on it. The edges refuse such input; these helpers keep what was
stored before (or arrived another way) from breaking a page or an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, the replacement character
    (``text`` itself, the same object, when it holds none)."""
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def json_without_surrogates(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings) with :func:`without_surrogates` applied to
    every string, keys included; other values are returned as they are."""
    if isinstance(value, str):
        return without_surrogates(value)
    if isinstance(value, Mapping):
        return {json_without_surrogates(k): json_without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_without_surrogates(v) for v in value]
    return value
