"""Fixtures for the REST API tests: a user with a bearer token, clients, and a
second namespace the user is not a member of."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.core.services import api_token_create
from tests.factories import HELLO_IR_TEXT, NamespaceFactory, UserFactory

API = "/apis/v2beta1"


@pytest.fixture
def token(user: Any) -> str:
    return api_token_create(user=user, name="tests")[1]


@pytest.fixture
def api(token: str) -> APIClient:
    """A client sending ``Authorization: Bearer <token>`` for alice (member of 'default')."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def other_namespace(db: Any) -> Any:
    """'team-b', with a member who is not alice."""
    namespace = NamespaceFactory(name="team-b")
    UserFactory(username="bob", namespace=namespace)
    return namespace


@pytest.fixture
def hello_yaml() -> bytes:
    return HELLO_IR_TEXT.encode()
