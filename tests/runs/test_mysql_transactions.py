"""Transactions on MySQL/MariaDB begin with START TRANSACTION (``pipelines_site.mysql``).

Django's own backend turns the session's autocommit off and on around each
transaction: two ``SET autocommit`` round trips. Canal's begins an explicit
transaction instead. These tests check the round trips saved, and that transactions
mean what they meant: isolation from other connections, rollback, savepoints, row
locks, and autocommit outside them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from apps.core.models import Namespace
from tests.database import locks_rows

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not locks_rows(), reason="MySQL/MariaDB only (SQLite's backend begins with BEGIN)"),
]


def _counters() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SHOW SESSION STATUS WHERE Variable_name IN ('Com_begin', 'Com_commit', 'Com_set_option')"
        )
        return {name: int(value) for name, value in cursor.fetchall()}


@contextlib.contextmanager
def _other() -> Iterator[Any]:
    """Another session, outside Django, as another worker process would be."""
    import MySQLdb  # installed with the MySQL extras only (make .venv/.mysql)

    settings = connection.settings_dict
    other = MySQLdb.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=int(settings["PORT"] or 3306),
        user=settings["USER"],
        password=settings["PASSWORD"] or "",
        database=connection.settings_dict["NAME"],
        autocommit=True,
    )
    try:
        yield other
    finally:
        other.close()


def _seen(other: Any, name: str) -> bool:
    cursor = other.cursor()
    cursor.execute("SELECT COUNT(*) FROM core_namespace WHERE name = %s", (name,))
    return bool(cursor.fetchone()[0])


def test_a_transaction_begins_and_ends_in_one_statement_each() -> None:
    connection.ensure_connection()
    before = _counters()
    with transaction.atomic():
        Namespace.objects.filter(name="x").exists()
    after = _counters()
    spent = {name: after[name] - before[name] for name in before}
    # Django's own backend: Com_set_option 2 (SET autocommit=0, then =1), Com_begin 0.
    assert spent == {"Com_begin": 1, "Com_commit": 1, "Com_set_option": 0}


def test_transactions_keep_their_meaning() -> None:
    import MySQLdb

    with _other() as other:
        with transaction.atomic():
            Namespace.objects.create(name="inside")
            assert not _seen(other, "inside")  # not committed yet
        assert _seen(other, "inside")

        with contextlib.suppress(ValueError), transaction.atomic():
            Namespace.objects.create(name="rolled-back")
            raise ValueError
        assert not Namespace.objects.filter(name="rolled-back").exists()

        with transaction.atomic():
            Namespace.objects.create(name="kept")
            with contextlib.suppress(ValueError), transaction.atomic():  # a savepoint
                Namespace.objects.create(name="undone")
                raise ValueError
        assert sorted(
            Namespace.objects.filter(name__in=["kept", "undone"]).values_list("name", flat=True)
        ) == ["kept"]

        # A row locked FOR UPDATE stays locked until the commit, then is free.
        locked = Namespace.objects.get(name="kept")
        probe = other.cursor()
        probe.execute("SET SESSION innodb_lock_wait_timeout = 1")
        with transaction.atomic():
            Namespace.objects.select_for_update().get(pk=locked.pk)
            with pytest.raises(MySQLdb.OperationalError):
                probe.execute("SELECT id FROM core_namespace WHERE id = %s FOR UPDATE", (locked.pk,))
        other.rollback()
        probe.execute("SELECT id FROM core_namespace WHERE id = %s FOR UPDATE", (locked.pk,))

        # Outside a block, every statement commits at once, as before.
        Namespace.objects.create(name="after")
        assert _seen(other, "after")
        assert connection.get_autocommit()
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@autocommit, @@in_transaction")
            assert cursor.fetchone() == (1, 0)
