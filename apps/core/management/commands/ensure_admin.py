"""``manage.py ensure_admin``: create the first admin user once, for ``make run``.
Acts as the operator (``apps.core.authz.OPERATOR``)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from apps.core.authz import OPERATOR
from apps.core.services import namespace_ensure, user_ensure


class Command(BaseCommand):
    help = (
        "If no superuser exists, create one (CANAL_ADMIN_USERNAME, default 'admin'; password "
        "CANAL_ADMIN_PASSWORD or a random one) and print the credentials once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        namespace_ensure(actor=OPERATOR)
        if get_user_model().objects.filter(is_superuser=True).exists():
            return
        username = os.environ.get("CANAL_ADMIN_USERNAME", "admin")
        password = os.environ.get("CANAL_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user_ensure(actor=OPERATOR, username=username, superuser=True, password=password)
        bar = "=" * 64
        self.stdout.write(
            f"\n{bar}\n  Canal's first admin user (shown once):\n"
            f"    username: {username}\n    password: {password}\n"
            f"  Change it with: .venv/bin/python manage.py changepassword {username}\n{bar}\n"
        )
