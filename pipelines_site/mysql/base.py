"""Django's MySQL/MariaDB backend, with one round trip less per transaction.

Django opens a transaction on MySQL by turning the session's autocommit off
(``SET autocommit=0``) and, after the COMMIT, on again (``SET autocommit=1``):
three statements, each a round trip to the server. Here a transaction begins with
``START TRANSACTION`` instead, as Django's SQLite backend begins one with ``BEGIN``
(``_start_transaction_under_autocommit``): the session stays in autocommit mode,
the explicit transaction lasts until its COMMIT or ROLLBACK, and turning Django's
autocommit back on afterwards sends nothing (mysqlclient reads the session's mode
from the server's last reply). Locking reads, savepoints, the isolation level and
what a DDL statement's implicit commit does are the same inside either kind of
transaction.
"""

from __future__ import annotations

from django.db.backends.mysql import base


class DatabaseWrapper(base.DatabaseWrapper):
    """``django.db.backends.mysql``; transactions begin with ``START TRANSACTION``."""

    def _start_transaction_under_autocommit(self) -> None:
        # Called by set_autocommit(False, force_begin_transaction_with_broken_autocommit=
        # True), which is how atomic() opens its outermost block.
        self.cursor().execute("START TRANSACTION")
