"""What the database under test accepts, for tests whose setup writes past the services."""

from __future__ import annotations

from django.db import connection


def refuses_lone_surrogates() -> bool:
    """MariaDB/MySQL check a JSON column's text (``JSON_VALID``) and refuse a lone
    surrogate escape such as ``"\\ud800"``; SQLite stores it."""
    return connection.vendor == "mysql"


def locks_rows() -> bool:
    """MariaDB/MySQL lock the rows a ``SELECT … FOR UPDATE`` reads; SQLite's writer locks
    the whole database instead."""
    return connection.vendor == "mysql"
