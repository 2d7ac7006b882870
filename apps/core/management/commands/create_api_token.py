"""``manage.py create_api_token USERNAME [--superuser]``: print an API token.

Acts as the operator (``apps.core.authz.OPERATOR``): whoever runs manage.py on the
server can read its database anyway, so the command is not role-checked further.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.authz import OPERATOR
from apps.core.exceptions import ServiceError
from apps.core.services import api_token_create, user_ensure


class Command(BaseCommand):
    help = (
        "Create USERNAME if missing (a member of the default namespace), then create an API "
        "token for it and print the token on stdout (and nothing else)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--superuser", action="store_true", help="Make the user staff and superuser.")
        parser.add_argument("--name", default="", help="A label for the token.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user, created = user_ensure(
                actor=OPERATOR, username=options["username"], superuser=options["superuser"]
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        _, plaintext = api_token_create(actor=OPERATOR, user=user, name=options["name"])
        if created:
            self.stderr.write(f"Created user {user.username!r}.")
        self.stdout.write(plaintext)
