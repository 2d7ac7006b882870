"""Database helpers shared by services."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import OperationalError, connection
from django.db.models import Field, Model

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


Fields = list["Field[Any, Any]"]
_UPDATE_SQL: dict[tuple[type[Model], tuple[str, ...], tuple[str, ...]], tuple[str, Fields, Fields]] = {}


def _concrete(model: type[Model], name: str) -> Field[Any, Any]:
    meta = model._meta
    found = meta.pk if name == "pk" else meta.get_field(name)
    if not isinstance(found, Field) or not found.concrete:
        raise ValueError(f"{model.__name__}.{name} is not a column")
    return found


def update_where(model: type[Model], where: dict[str, Any], **values: Any) -> int:
    """``model.objects.filter(**where).update(**values)`` for the hot paths of a worker's
    group commit, where building the ORM's query costs more than running it: equality on
    concrete fields only (``pk`` names the primary key, and not None). The statement for
    a model and set of fields is built once; each value is still adapted by its field,
    as the ORM adapts it, so every backend gets what ``update()`` would send. Returns the
    number of rows updated."""
    key = (model, tuple(values), tuple(where))
    if key not in _UPDATE_SQL:
        setting = [_concrete(model, name) for name in values]
        matching = [_concrete(model, name) for name in where]
        quote = connection.ops.quote_name
        # Only identifiers from the model's metadata, quoted; every value is a parameter.
        sql = "UPDATE {} SET {} WHERE {}".format(  # noqa: S608
            quote(model._meta.db_table),
            ", ".join(f"{quote(str(f.column))} = %s" for f in setting),
            " AND ".join(f"{quote(str(f.column))} = %s" for f in matching),
        )
        _UPDATE_SQL[key] = sql, setting, matching
    sql, setting, matching = _UPDATE_SQL[key]
    params = [f.get_db_prep_save(v, connection) for f, v in zip(setting, values.values(), strict=True)]
    for f, v in zip(matching, where.values(), strict=True):
        if v is None:
            raise ValueError("update_where matches values, not NULL")
        params.append(f.get_db_prep_value(v, connection, prepared=False))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)
