"""Database helpers shared by services."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, connection, connections
from django.db.models import Field, Model
from django.db.transaction import TransactionManagementError

T = TypeVar("T")
M = TypeVar("M", bound=Model)
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


class RowWrites:
    """Row updates of one transaction, sent together: one UPDATE per model and set of
    columns for all the rows given, not one per row. On MariaDB each statement is a
    round trip the worker's group commit waits for, under the run's lock: a batch of
    eight finished steps was 32 UPDATEs of four shapes, and is now four.

    ``update(model, key, where, **values)`` is ``update_where(model, {**key, **where},
    **values)`` deferred: ``key`` names one row (its primary key, or the columns of a
    unique key), ``where`` adds conditions on other columns, the same for the rows sent
    together. ``flush()`` sends what is pending, and must come before anything in the
    transaction reads those rows. Each row must be updated: a row its ``where`` no longer
    matches (the caller holds the lock that should have made that impossible) fails the
    flush, and with it the transaction.

    Each column's value is a ``CASE`` on the row's key, or one parameter where the rows
    share it. A ``CASE`` names only the key's columns: MySQL assigns the columns of an
    UPDATE from left to right, so a ``CASE`` on a column set before it would see the new
    value."""

    # Rows per statement: a ``CASE`` is read row by row for every row it updates (its
    # cost grows with the square of the rows), and SQLite may allow 999 parameters.
    MAX_ROWS = 100
    MAX_PARAMS = 900

    def __init__(self) -> None:
        self._groups: dict[tuple[Any, ...], dict[tuple[Any, ...], dict[str, Any]]] = {}
        self._rows: set[tuple[Any, ...]] = set()  # (model, key's columns, key's values) pending

    def __bool__(self) -> bool:
        return bool(self._groups)

    def pending(self, model: type[Model], key: dict[str, Any]) -> bool:
        """Whether an update of the row ``key`` names waits for the next flush."""
        return (model, tuple(key), tuple(key.values())) in self._rows

    def update(
        self, model: type[Model], key: dict[str, Any], where: dict[str, Any] | None = None, **values: Any
    ) -> None:
        """Update the row ``key`` names with ``values`` when this is flushed."""
        conditions = tuple(sorted((where or {}).items()))
        shape = (model, tuple(key), conditions, tuple(values))
        row = tuple(key.values())
        if any(v is None for v in row):
            raise ValueError("RowWrites matches values, not NULL")
        if self.pending(model, key):  # the same row twice: the first write goes first
            self.flush()
        self._groups.setdefault(shape, {})[row] = values
        self._rows.add((model, tuple(key), row))

    def flush(self) -> None:
        """Send what is pending (nothing, if nothing is)."""
        groups, self._groups, self._rows = self._groups, {}, set()
        for (model, key_names, conditions, value_names), rows in groups.items():
            per_row = len(key_names) * (len(value_names) + 1) + len(value_names)
            size = max(1, min(self.MAX_ROWS, (self.MAX_PARAMS - len(conditions)) // per_row))
            items = list(rows.items())
            for start in range(0, len(items), size):
                chunk = dict(items[start : start + size])
                if len(chunk) == 1:
                    ((row, values),) = chunk.items()
                    done = update_where(
                        model, {**dict(zip(key_names, row, strict=True)), **dict(conditions)}, **values
                    )
                else:
                    done = _update_rows(model, key_names, conditions, value_names, chunk)
                if done != len(chunk):
                    raise DatabaseError(
                        f"{model.__name__}: {len(chunk) - done} of {len(chunk)} rows to update "
                        f"no longer match {dict(conditions) or 'their key'}"
                    )


def _update_rows(
    model: type[Model],
    key_names: tuple[str, ...],
    conditions: tuple[tuple[str, Any], ...],
    value_names: tuple[str, ...],
    rows: dict[tuple[Any, ...], dict[str, Any]],
) -> int:
    """One UPDATE for ``rows`` (see RowWrites). Returns the number of rows updated."""
    quote = connection.ops.quote_name
    keys = [_concrete(model, name) for name in key_names]
    prepared_keys = [
        [f.get_db_prep_value(v, connection, prepared=False) for f, v in zip(keys, row, strict=True)]
        for row in rows
    ]
    match = " AND ".join(f"{quote(str(f.column))} = %s" for f in keys)
    assignments: list[str] = []
    params: list[Any] = []
    for name in value_names:
        found = _concrete(model, name)
        column = quote(str(found.column))
        prepared = [found.get_db_prep_save(values[name], connection) for values in rows.values()]
        if all(value == prepared[0] for value in prepared[1:]):
            assignments.append(f"{column} = %s")
            params.append(prepared[0])
            continue
        assignments.append(f"{column} = CASE" + f" WHEN {match} THEN %s" * len(rows) + f" ELSE {column} END")
        for row_key, value in zip(prepared_keys, prepared, strict=True):
            params.extend((*row_key, value))
    if len(keys) == 1:
        where = f"{quote(str(keys[0].column))} IN ({', '.join(['%s'] * len(rows))})"
    else:
        where = "(" + " OR ".join([f"({match})"] * len(rows)) + ")"
    for row_key in prepared_keys:
        params.extend(row_key)
    for name, value in conditions:
        found = _concrete(model, name)
        if value is None:
            raise ValueError("RowWrites matches values, not NULL")
        where += f" AND {quote(str(found.column))} = %s"
        params.append(found.get_db_prep_value(value, connection, prepared=False))
    # Only identifiers from the model's metadata, quoted; every value is a parameter.
    sql = f"UPDATE {quote(model._meta.db_table)} SET {', '.join(assignments)} WHERE {where}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


# Lookups ``select_where`` understands, as SQL with one placeholder per value (``in``
# takes a list; its statement is built once per list length).
_LOOKUPS = {
    "exact": "{col} = %s",
    "gt": "{col} > %s",
    "in": "{col} IN ({marks})",
    # A time that may be unset: due when unset or not after the value.
    "null_or_lte": "({col} IS NULL OR {col} <= %s)",
}
_Select = tuple[str, Fields, list[tuple["Field[Any, Any]", str]], list[tuple[Any, list[Callable[..., Any]]]]]
_SELECT_SQL: dict[tuple[Any, ...], _Select] = {}
# An ``in`` list's statement is kept for lists up to this long (a group commit's batch):
# one statement per length, so a long-lived worker keeps a bounded number of them.
CACHED_IN_LENGTH = 64


def _converters(model: type[Model], field: Field[Any, Any]) -> tuple[Any, list[Callable[..., Any]]]:
    """The column and what the ORM applies to its value read from this backend (as the
    compiler does for a model's column), so a row read here equals one a QuerySet reads."""
    col = field.get_col(model._meta.db_table)
    return col, [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]


def _select_sql(
    model: type[Model],
    fields: tuple[str, ...],
    where: tuple[tuple[str, int], ...],
    order_by: tuple[str, ...],
    limit: int | None,
    for_update: bool,
) -> _Select:
    key = (model, fields, where, order_by, limit, for_update)
    cached = _SELECT_SQL.get(key)
    if cached is not None:
        return cached
    quote = connection.ops.quote_name
    # In the model's column order: ``Model.from_db`` fills the rest in as deferred.
    order = {f: index for index, f in enumerate(model._meta.concrete_fields)}
    selected = sorted({_concrete(model, name) for name in fields}, key=order.__getitem__)
    matching: list[tuple[Field[Any, Any], str]] = []
    clauses = []
    for name, count in where:
        column, _, lookup = name.partition("__")
        lookup = lookup or "exact"
        if lookup not in _LOOKUPS:
            raise ValueError(f"select_where does not know the lookup {lookup!r}")
        found = _concrete(model, column)
        matching.append((found, lookup))
        clauses.append(_LOOKUPS[lookup].format(col=quote(str(found.column)), marks=", ".join(["%s"] * count)))
    sql = "SELECT {} FROM {} WHERE {}".format(  # noqa: S608  (identifiers from the model)
        ", ".join(quote(str(f.column)) for f in selected),
        quote(model._meta.db_table),
        " AND ".join(clauses) or "1 = 1",
    )
    if order_by:
        sql += " ORDER BY " + ", ".join(quote(str(_concrete(model, name).column)) for name in order_by)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    if for_update and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    built = sql, selected, matching, [_converters(model, f) for f in selected]
    if all(count <= CACHED_IN_LENGTH for _, count in where):
        _SELECT_SQL[key] = built
    return built


def _read(
    model: type[Model],
    names: tuple[str, ...],
    where: Mapping[str, Any],
    order_by: Sequence[str],
    limit: int | None,
    for_update: bool,
) -> tuple[Fields, list[list[Any]]]:
    """The rows ``select_where`` and ``select_values`` read: the columns (in the model's
    order) and each row's values, converted as the ORM converts them."""
    if for_update and connection.features.has_select_for_update and connection.get_autocommit():
        # As the ORM refuses it: the lock would end with the statement.
        raise TransactionManagementError("select_where(for_update=True) needs a transaction")
    shape = tuple((name, len(value) if name.endswith("__in") else 1) for name, value in where.items())
    sql, selected, matching, converters = _select_sql(model, names, shape, tuple(order_by), limit, for_update)
    if any(count == 0 for _, count in shape):
        return selected, []  # an empty ``in``: nothing matches (and ``IN ()`` is no SQL)
    params: list[Any] = []
    for (found, lookup), value in zip(matching, where.values(), strict=True):
        for item in value if lookup == "in" else (value,):
            if item is None:
                raise ValueError("select_where matches values, not NULL")
            params.append(found.get_db_prep_value(item, connection, prepared=False))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    converted = []
    for row in rows:
        values = list(row)
        for index, (col, convert) in enumerate(converters):
            for converter in convert:
                values[index] = converter(values[index], col, connection)
        converted.append(values)
    return selected, converted


def select_where(
    model: type[M],
    fields: Sequence[str],
    where: Mapping[str, Any],
    *,
    order_by: Sequence[str] = (),
    limit: int | None = None,
    for_update: bool = False,
) -> list[M]:
    """``model.objects.filter(**where).only(*fields)`` (``order_by``, ``[:limit]``,
    ``select_for_update()``) for the hot paths of a worker's group commit, where building
    the ORM's query costs more than running it, as ``update_where`` does for writes.

    ``where`` maps ``field`` or ``field__lookup`` (``exact``, ``gt``, ``in`` with a list,
    ``null_or_lte``: unset or not after the value) to a value, ANDed; ``pk`` names the
    primary key. The statement for a shape is built once per process; values are adapted
    by their fields and columns converted as the ORM does, and the rows are built with
    ``Model.from_db``, so what is returned is what the QuerySet returns, with the columns
    not in ``fields`` deferred. ``for_update`` locks the rows where the backend can (not on
    SQLite, whose transactions lock the whole database)."""
    names = tuple(dict.fromkeys(("pk", *fields)))  # the primary key is always read
    selected, rows = _read(model, names, where, order_by, limit, for_update)
    attnames = [f.attname for f in selected]
    return [model.from_db(connection.alias, attnames, values) for values in rows]


def select_values(
    model: type[Model], fields: Sequence[str], where: Mapping[str, Any], *, order_by: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """``model.objects.filter(**where).values(*fields)`` the way ``select_where`` reads
    (concrete fields, keyed by the names given)."""
    names = tuple(dict.fromkeys(fields))
    selected, rows = _read(model, names, where, order_by, None, False)
    position = {f: index for index, f in enumerate(selected)}
    columns = [(name, position[_concrete(model, name)]) for name in names]
    return [{name: values[index] for name, index in columns} for values in rows]


# What one INSERT of many rows may hold. MariaDB refuses a statement longer than its
# max_allowed_packet (16 MiB by default; MySQL 8's is 64 MiB) and drops the connection
# ("server has gone away"): a plan of a wide loop over a long list (each iteration's
# inputs hold the list) was one INSERT of over 100 MiB.
INSERT_BYTES = 4 * 1024 * 1024
_VALUE_BYTES = 8  # what a number, a date or NULL takes in a statement, about


def insert_bounded(model: type[Model], objs: Sequence[Model], *, limit: int = INSERT_BYTES) -> int:
    """``model.objects.bulk_create(objs)`` for new rows whose primary keys are set, in
    multi-row INSERTs of about ``limit`` bytes at most (and within the backend's limit
    on parameters: 999 on SQLite). Returns the number of statements sent.

    Each value is prepared by its field (``pre_save``, then ``get_db_prep_save``), as
    ``bulk_create`` prepares it, so every backend gets what the ORM would send; what is
    skipped is the ORM building each row's placeholders. Expressions (``Value``, ``Now``,
    a ``db_default``) are refused, not compiled: this sends plain values only. The bound
    counts the prepared values' characters, before the driver escapes them: a value made
    of quotes can take twice its length in the statement, which 4 MiB against MariaDB's
    16 MiB ``max_allowed_packet`` allows for. Like ``bulk_create``: no signals, no
    ``save()``; the objects are marked saved. One table only: a model of multi-table
    inheritance is refused (``bulk_create`` refuses it too)."""
    if not objs:
        return 0
    meta = (model._meta.concrete_model or model)._meta  # a proxy's rows are its concrete model's
    if meta.parents:
        raise ValueError(f"insert_bounded writes one table; {model.__name__} inherits another's")
    fields = list(meta.local_concrete_fields)
    if any(getattr(obj, meta.pk.attname) is None for obj in objs):
        raise ValueError("insert_bounded inserts rows whose primary keys are set")
    db = connections[DEFAULT_DB_ALIAS]  # not the proxy: read for every value below
    quote = db.ops.quote_name
    # Only identifiers from the model's metadata, quoted; every value is a parameter.
    prefix = "INSERT INTO {} ({}) VALUES ".format(  # noqa: S608
        quote(meta.db_table), ", ".join(quote(str(f.column)) for f in fields)
    )
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    max_rows = max(1, (db.features.max_query_params or 1 << 30) // len(fields))
    statements = 0
    params: list[Any] = []
    rows = size = 0

    def send() -> None:
        nonlocal params, rows, size, statements
        with db.cursor() as cursor:
            cursor.execute(prefix + ", ".join([row_sql] * rows), params)
        statements += 1
        params, rows, size = [], 0, 0

    for obj in objs:
        values = [f.get_db_prep_save(f.pre_save(obj, True), db) for f in fields]
        if any(hasattr(v, "resolve_expression") for v in values):
            raise ValueError("insert_bounded sends plain values; an expression or a db_default was given")
        length = sum(len(v) if isinstance(v, str | bytes) else _VALUE_BYTES for v in values)
        if rows and (size + length > limit or rows == max_rows):
            send()
        params += values
        rows += 1
        size += length
    send()
    for obj in objs:
        obj._state.adding = False
        obj._state.db = db.alias
    return statements
