"""Login throttling (django-axes), through the real login forms with CSRF enforced:
after CANAL_LOGIN_FAILURE_LIMIT wrong passwords even the right one is refused, until
the cool-down has passed; a success clears the count; one user's (or one address's)
lockout does not lock anyone else; the admin login is covered by the same counter."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory

PASSWORD = "pw-canal-test"  # the factories' password
WRONG = "not-the-password"


def _client(address: str = "192.0.2.10") -> Client:
    return Client(enforce_csrf_checks=True, REMOTE_ADDR=address)


def _login(client: Client, username: str, password: str, url: str = "/login/"):  # type: ignore[no-untyped-def]
    """What a browser does: load the form (which sets the CSRF cookie), post it back."""
    form = client.get(url)
    assert form.status_code == 200, form.status_code
    token = client.cookies["csrftoken"].value
    return client.post(url, {"username": username, "password": password, "csrfmiddlewaretoken": token})


def _logged_in_as(client: Client) -> str | None:
    response = client.get("/pipelines/")
    if response.status_code != 200:
        return None
    return response.wsgi_request.user.get_username()


def _fail(client: Client, username: str, times: int, url: str = "/login/") -> None:
    """Post a wrong password ``times`` times: the form comes back with an error, and
    the attempt that reaches the limit already gets the locked-out page."""
    for attempt in range(1, times + 1):
        response = _login(client, username, WRONG, url)
        if attempt < settings.AXES_FAILURE_LIMIT:
            assert response.status_code == 200, f"attempt {attempt}: {response.status_code}"
            assert b"Too many failed logins" not in response.content
        else:
            _assert_locked_out(response)
        assert _logged_in_as(client) is None


def _assert_locked_out(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many failed logins" in body
    assert "Try again in" in body


@pytest.fixture
def limit() -> int:
    assert settings.AXES_FAILURE_LIMIT >= 2
    return int(settings.AXES_FAILURE_LIMIT)


@pytest.mark.django_db
def test_lockout_refuses_the_right_password_until_the_cooloff_passes(limit: int) -> None:
    UserFactory(username="alice")
    client = _client()
    _fail(client, "alice", limit)

    _assert_locked_out(_login(client, "alice", PASSWORD))
    assert _logged_in_as(client) is None

    cooloff = settings.AXES_COOLOFF_TIME
    assert isinstance(cooloff, timedelta)
    start = timezone.now()
    # Shortly before the cool-down ends: still refused, and the attempt starts the wait again...
    with time_machine.travel(start + cooloff - timedelta(seconds=30), tick=True):
        _assert_locked_out(_login(client, "alice", PASSWORD))
    # ...so just after the first cool-down would have ended, it is still refused.
    restarted = start + cooloff + timedelta(seconds=30)
    with time_machine.travel(restarted, tick=True):
        _assert_locked_out(_login(client, "alice", PASSWORD))
    # A full cool-down after the last attempt, the right password works.
    with time_machine.travel(restarted + cooloff + timedelta(seconds=5), tick=True):
        response = _login(client, "alice", PASSWORD)
        assert response.status_code == 302, response.status_code
        assert _logged_in_as(client) == "alice"


@pytest.mark.django_db
def test_one_failure_fewer_than_the_limit_still_logs_in(limit: int) -> None:
    UserFactory(username="alice")
    client = _client()
    _fail(client, "alice", limit - 1)
    assert _login(client, "alice", PASSWORD).status_code == 302
    assert _logged_in_as(client) == "alice"


@pytest.mark.django_db
def test_a_successful_login_resets_the_count(limit: int) -> None:
    UserFactory(username="alice")
    client = _client()
    _fail(client, "alice", limit - 1)
    assert _login(client, "alice", PASSWORD).status_code == 302
    client.post("/logout/", {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert _logged_in_as(client) is None
    # Without the reset this would make 2 * (limit - 1) >= limit failures in a row.
    _fail(client, "alice", limit - 1)
    assert _login(client, "alice", PASSWORD).status_code == 302
    assert _logged_in_as(client) == "alice"


@pytest.mark.django_db
def test_lockout_of_one_user_does_not_lock_another(limit: int) -> None:
    UserFactory(username="alice")
    UserFactory(username="bob")
    client = _client()
    _fail(client, "alice", limit)
    _assert_locked_out(_login(client, "alice", PASSWORD))

    other = _client()  # same address, another account
    assert _login(other, "bob", PASSWORD).status_code == 302
    assert _logged_in_as(other) == "bob"


@pytest.mark.django_db
def test_lockout_is_per_address(limit: int) -> None:
    UserFactory(username="alice")
    attacker = _client("198.51.100.7")
    _fail(attacker, "alice", limit)
    _assert_locked_out(_login(attacker, "alice", PASSWORD))

    owner = _client("192.0.2.20")
    assert _login(owner, "alice", PASSWORD).status_code == 302
    assert _logged_in_as(owner) == "alice"


@pytest.mark.django_db
def test_the_admin_login_is_throttled_too(limit: int) -> None:
    UserFactory(username="root", is_staff=True, is_superuser=True)
    client = _client()
    _fail(client, "root", limit, url="/admin/login/")
    response = _login(client, "root", PASSWORD, url="/admin/login/")
    _assert_locked_out(response)
    assert client.get("/admin/").status_code == 302  # still not in
    # The same counter guards the dashboard's login form.
    _assert_locked_out(_login(client, "root", PASSWORD))
