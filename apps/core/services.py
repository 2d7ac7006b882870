"""Write-side operations for accounts, namespaces and API tokens."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import InvalidInput
from apps.core.models import ApiToken, Membership, Namespace, ProcessHeartbeat

TOKEN_PREFIX = "canal_"  # noqa: S105 (a prefix that marks Canal tokens, not a secret)


def namespace_ensure(*, name: str = Namespace.DEFAULT, description: str = "") -> Namespace:
    """Get or create a namespace by name."""
    namespace, _ = Namespace.objects.get_or_create(name=name, defaults={"description": description})
    return namespace


def membership_ensure(
    *, namespace: Namespace, user: AbstractUser, role: str = Membership.Role.EDITOR
) -> Membership:
    """Make the user a member of the namespace (idempotent)."""
    membership, _ = Membership.objects.get_or_create(namespace=namespace, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def user_ensure(
    *, username: str, superuser: bool = False, password: str | None = None, email: str = ""
) -> tuple[AbstractUser, bool]:
    """Get or create a user, a member of the default namespace. ``superuser`` also
    makes an existing user staff and superuser. Returns (user, created)."""
    if not username or len(username) > 150:
        raise InvalidInput("username must be 1-150 characters", field="username")
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username, defaults={"email": email})
    changed = False
    if created:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        changed = True
    if superuser and not (user.is_staff and user.is_superuser):
        user.is_staff = user.is_superuser = True
        changed = True
    if changed:
        user.save()
    membership_ensure(
        namespace=namespace_ensure(),
        user=user,
        role=Membership.Role.OWNER if superuser else Membership.Role.EDITOR,
    )
    return user, created


def api_token_create(*, user: AbstractUser, name: str = "") -> tuple[ApiToken, str]:
    """Create an API token. Returns the row and the plaintext, which is not stored."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, digest=ApiToken.digest_of(plaintext), prefix=plaintext[:12]
    )
    return token, plaintext


def api_token_authenticate(*, plaintext: str) -> AbstractUser | None:
    """The active user owning this token, or None. Marks the token used (at most once a minute)."""
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=ApiToken.digest_of(plaintext), revoked=False, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_token_revoke(*, token: ApiToken) -> None:
    """Revoke a token; it stops authenticating at once."""
    ApiToken.objects.filter(pk=token.pk).update(revoked=True)


# Rows of processes gone this long are deleted when another process starts.
HEARTBEAT_RETENTION = timedelta(days=1)


def process_heartbeat_record(
    *, instance: uuid.UUID, kind: str, hostname: str, pid: int, started_at: datetime
) -> None:
    """Record that this process is alive now: one UPDATE of its own row; the first
    beat creates the row (and prunes the rows of processes long gone)."""
    now = timezone.now()
    if ProcessHeartbeat.objects.filter(pk=instance).update(last_seen=now):
        return
    if kind not in ProcessHeartbeat.Kind.values:
        raise InvalidInput(f"unknown process kind {kind!r}", field="kind")
    ProcessHeartbeat.objects.filter(last_seen__lt=now - HEARTBEAT_RETENTION).delete()
    ProcessHeartbeat.objects.create(
        id=instance, kind=kind, hostname=hostname[:255], pid=pid, started_at=started_at, last_seen=now
    )


def process_heartbeat_forget(*, instance: uuid.UUID) -> None:
    """A process that stops cleanly removes its row: it is gone, not dead."""
    ProcessHeartbeat.objects.filter(pk=instance).delete()
