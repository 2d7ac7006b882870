"""Write-side operations for accounts, namespaces and API tokens."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import InvalidInput
from apps.core.models import ApiToken, Membership, Namespace

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
