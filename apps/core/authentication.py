"""DRF authentication with ``Authorization: Bearer <token>`` (what kfp_server_api sends)."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.core.services import api_token_authenticate


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate API calls with a token made by ``create_api_token``."""

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <token>'.")
        try:
            plaintext = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        user = api_token_authenticate(plaintext=plaintext)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        return (user, None)

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (with WWW-Authenticate) rather than 403.
        return 'Bearer realm="canal"'
