"""Django's MySQL/MariaDB backend, with one round trip less per transaction.

Django opens a transaction on MySQL by turning the session's autocommit off
(``SET autocommit=0``) and, after the COMMIT, on again (``SET autocommit=1``):
three statements, each a round trip to the server. Here a transaction begins with
``START TRANSACTION`` instead, as Django's SQLite backend begins one with ``BEGIN``
(``_start_transaction_under_autocommit``): the session stays in autocommit mode,
the explicit transaction lasts until its COMMIT or ROLLBACK, and turning Django's
autocommit back on afterwards sends nothing (mysqlclient reads the session's mode
from the server's last reply). Locking reads, savepoints, ``on_commit`` hooks and the
isolation level are the same inside either kind of transaction.

One difference: once a transaction has ended inside an ``atomic()`` block without
Django knowing (a DDL statement or ``LOCK TABLES``, which commit implicitly, or a
deadlock the code caught and went on after, which the server rolled back), the block's
later statements each commit at once here, where with autocommit off they would open a
new transaction for the block's end to commit or roll back. Neither is what the block
meant; Canal runs no DDL inside a block (migrations run their schema changes outside
one on MySQL) and retries a deadlocked transaction whole (``retry_on_conflict``), never
going on inside it.
"""

from __future__ import annotations

from django.db.backends.mysql import base


class DatabaseWrapper(base.DatabaseWrapper):
    """``django.db.backends.mysql``; transactions begin with ``START TRANSACTION``."""

    def _start_transaction_under_autocommit(self) -> None:
        # Called by set_autocommit(False, force_begin_transaction_with_broken_autocommit=
        # True), which is how atomic() opens its outermost block.
        self.cursor().execute("START TRANSACTION")
