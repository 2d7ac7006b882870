"""Login is required everywhere except login and health; API tokens authenticate."""

from __future__ import annotations

import io
import re
import uuid

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIRequestFactory

from apps.core.authentication import BearerTokenAuthentication
from apps.core.models import ApiToken, Namespace

# The admin has its own login page; the API health check is public, as in KFP.
PUBLIC = {"/login/", "/healthz", "/admin/login/", "/apis/v2beta1/healthz"}


def _concrete_paths() -> list[str]:
    """Every route in the URL conf, with its parameters filled in."""
    paths: list[str] = []

    def walk(patterns, prefix: str) -> None:  # type: ignore[no-untyped-def]
        for p in patterns:
            route = str(p.pattern)
            route = re.sub(r"<int:\w+>", "1", route)
            route = re.sub(r"<(?:\w+:)?\w+>", str(uuid.uuid4()), route)
            route = route.lstrip("^").rstrip("$").replace("\\Z", "")
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + route)
            elif isinstance(p, URLPattern):
                if "(?P" in route or "\\" in route:  # admin regex routes: covered by their prefix
                    continue
                paths.append("/" + prefix + route)

    walk(get_resolver().url_patterns, "")
    return sorted(set(paths))


@pytest.mark.django_db
def test_every_route_but_login_and_health_requires_login(client) -> None:  # type: ignore[no-untyped-def]
    paths = _concrete_paths()
    assert len(paths) > 10
    for path in paths:
        response = client.get(path)
        if path in PUBLIC:
            assert response.status_code == 200, path
        elif path.startswith("/apis/"):
            assert response.status_code == 401, path
        else:
            assert response.status_code in (301, 302), path
            assert "login" in response["Location"], path


@pytest.mark.django_db
def test_healthz_answers_200_without_login(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["web"] == {"status": "ok"}  # worker/scheduler: tests/hardening/test_healthz.py


@pytest.mark.django_db
def test_login_then_pages_are_served(client, user) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/login/", {"username": "alice", "password": "pw-canal-test"})
    assert response.status_code == 302
    assert client.get("/pipelines/").status_code == 200
    assert client.get("/logout/").status_code == 405  # logging out is a POST (CSRF-protected)
    client.post("/logout/")
    assert client.get("/pipelines/").status_code == 302


@pytest.mark.django_db
def test_create_api_token_prints_a_token_that_authenticates() -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "robot", stdout=out, stderr=err)
    token = out.getvalue().strip()
    assert token.startswith("canal_") and "\n" not in token
    assert "Created user 'robot'" in err.getvalue()

    request = APIRequestFactory().get("/apis/v2beta1/runs", HTTP_AUTHORIZATION=f"Bearer {token}")
    user, _ = BearerTokenAuthentication().authenticate(request)  # type: ignore[misc]
    assert user.username == "robot"
    assert not user.is_staff
    assert user.namespaces.filter(name=Namespace.DEFAULT).exists()
    # Only the digest is stored.
    assert not ApiToken.objects.filter(digest=token).exists()

    bad = APIRequestFactory().get("/", HTTP_AUTHORIZATION="Bearer canal_not-a-real-token")
    with pytest.raises(AuthenticationFailed):
        BearerTokenAuthentication().authenticate(bad)

    ApiToken.objects.update(revoked=True)
    with pytest.raises(AuthenticationFailed):
        BearerTokenAuthentication().authenticate(request)


@pytest.mark.django_db
def test_create_api_token_superuser_flag_makes_staff() -> None:
    out = io.StringIO()
    call_command("create_api_token", "ops", "--superuser", stdout=out, stderr=io.StringIO())
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")
    user, _ = BearerTokenAuthentication().authenticate(request)  # type: ignore[misc]
    assert user.is_staff and user.is_superuser


@pytest.mark.django_db
def test_ensure_admin_prints_credentials_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CANAL_ADMIN_PASSWORD", "first-pass-123")
    first, second = io.StringIO(), io.StringIO()
    call_command("ensure_admin", stdout=first)
    call_command("ensure_admin", stdout=second)
    assert "username: admin" in first.getvalue()
    assert "first-pass-123" in first.getvalue()
    assert second.getvalue() == ""
