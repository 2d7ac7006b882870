"""Injected API failures: the next N requests (or all, until cleared) answer with a given code."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["Faults"]


class Faults:
    """One pending fault at a time, e.g. ``inject(503, 3)``; ``inject(503, None)`` lasts until cleared."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._code: int | None = None
        self._remaining: int | None = None
        self.answered = 0  # requests answered with an injected failure, in all

    def inject(self, code: int, count: int | None = 1) -> None:
        """Answer the next ``count`` API requests (every one when None) with ``code``."""
        if not 400 <= code <= 599:
            raise ValueError(f"an injected answer must be an HTTP error code, not {code}")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or None: until cleared)")
        with self._lock:
            self._code, self._remaining = code, count

    def clear(self) -> None:
        """Answer normally again."""
        with self._lock:
            self._code, self._remaining = None, None

    def take(self) -> int | None:
        """The code this request must fail with, if any (counts it)."""
        with self._lock:
            code = self._code
            if code is None:
                return None
            if self._remaining is not None:
                self._remaining -= 1
                if self._remaining <= 0:
                    self._code, self._remaining = None, None
            self.answered += 1
            return code

    def describe(self) -> dict[str, Any]:
        """The pending fault, for the admin endpoint."""
        with self._lock:
            return {"code": self._code, "remaining": self._remaining, "answered": self.answered}
