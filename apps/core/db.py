"""Database helpers shared by services."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError

T = TypeVar("T")
logger = logging.getLogger("canal.db")

# MySQL/MariaDB: 1213 = deadlock (the transaction was rolled back), 1205 = lock wait
# timeout. SQLite: "database is locked" after its busy timeout. All mean "try again".
_RETRYABLE_CODES = {1213, 1205}


def is_transient(exc: OperationalError) -> bool:
    """True for lock conflicts that a retry of the whole transaction resolves."""
    code = exc.args[0] if exc.args else None
    return code in _RETRYABLE_CODES or "database is locked" in str(exc)


def retry_on_conflict(fn: Callable[[], T], *, attempts: int = 4, what: str = "transaction") -> T:
    """Run ``fn`` (one whole transaction) again when the database rolled it back for a
    lock conflict. InnoDB picks a deadlock victim and expects the caller to retry; the
    work done here is idempotent (it re-reads under locks), so retrying is safe."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except OperationalError as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            logger.info("%s hit a lock conflict (%s); retrying (%d/%d)", what, exc, attempt, attempts - 1)
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    raise AssertionError("unreachable")
