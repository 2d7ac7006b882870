"""Write-side operations for accounts, namespaces, memberships and API tokens.

Every service takes the acting user (``actor=``) and checks it with
``apps.core.authz`` before writing; ``manage.py`` commands act as ``OPERATOR``.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from apps.core.authz import (
    VERB_ROLE,
    Action,
    Actor,
    admin_authorize,
    namespace_authorize,
    namespace_authorize_verb,
)
from apps.core.exceptions import Conflict, FailedPrecondition, InvalidInput, PermissionDenied
from apps.core.models import ApiToken, Membership, Namespace, ProcessHeartbeat

TOKEN_PREFIX = "canal_"  # noqa: S105 (a prefix that marks Canal tokens, not a secret)


def namespace_ensure(*, actor: Actor, name: str = Namespace.DEFAULT, description: str = "") -> Namespace:
    """Get or create a namespace by name (administrators and operators only)."""
    admin_authorize(actor=actor, action=Action.NAMESPACE_CREATE)
    namespace, _ = Namespace.objects.get_or_create(name=name, defaults={"description": description})
    return namespace


def namespace_create(*, actor: Actor, name: str, description: str = "") -> Namespace:
    """Create a namespace (administrators only). Its first owner is added from its
    members page (or by the admin who created it)."""
    admin_authorize(actor=actor, action=Action.NAMESPACE_CREATE)
    try:
        with transaction.atomic():
            return Namespace.objects.create(name=name, description=description or "")
    except IntegrityError as exc:
        raise Conflict(f"a namespace named {name!r} already exists", field="name") from exc


def namespace_update(*, actor: Actor, namespace: Namespace, description: str) -> Namespace:
    """Change a namespace's description (its owners, or administrators). The name is
    its identity in URLs and API calls, so it does not change."""
    namespace_authorize(actor=actor, namespace=namespace, action=Action.MEMBERS_MANAGE)
    Namespace.objects.filter(pk=namespace.pk).update(description=description or "")
    namespace.description = description or ""
    return namespace


def namespace_delete(*, actor: Actor, namespace: Namespace) -> None:
    """Delete an empty namespace (administrators only). One that still holds pipelines,
    experiments, runs or recurring runs is refused: delete those first."""
    admin_authorize(actor=actor, action=Action.NAMESPACE_DELETE)
    try:
        with transaction.atomic():
            namespace.delete()
    except ProtectedError as exc:
        raise FailedPrecondition(
            f"namespace {namespace.name!r} still holds pipelines, experiments or runs; delete them first"
        ) from exc


#: The resources KFP's Authorize asks about (its AuthorizeRequest.Resources enum).
AUTHORIZE_RESOURCES = ("VIEWERS",)


def access_authorize(*, actor: Actor, namespace: Namespace, resources: str, verb: str) -> None:
    """KFP's AuthService.Authorize: may ``actor`` ``verb`` the ``resources`` of ``namespace``?
    Returns when allowed; raises InvalidInput for an unset or unknown resources or verb,
    NotFound outside the namespace, PermissionDenied when the role is too low. Canal has
    no separate viewer objects (KFP's Tensorboard viewers), so the answer is the role's."""
    if resources not in AUTHORIZE_RESOURCES:
        raise InvalidInput(
            f"resources must be one of {', '.join(AUTHORIZE_RESOURCES)} (got {resources or 'nothing'!r})",
            field="resources",
        )
    if verb not in VERB_ROLE:
        raise InvalidInput(
            f"verb must be one of {', '.join(VERB_ROLE)} (got {verb or 'nothing'!r})", field="verb"
        )
    namespace_authorize_verb(actor=actor, namespace=namespace, verb=verb)


def _check_role(role: str) -> str:
    if role not in Membership.Role.values:
        raise InvalidInput(
            f"role must be one of {', '.join(Membership.Role.values)}; got {role!r}", field="role"
        )
    return role


def membership_ensure(
    *, actor: Actor, namespace: Namespace, user: User, role: str = Membership.Role.EDITOR
) -> Membership:
    """Make the user a member of the namespace (idempotent: an existing role is kept)."""
    namespace_authorize(actor=actor, namespace=namespace, action=Action.MEMBERS_MANAGE)
    membership, _ = Membership.objects.get_or_create(
        namespace=namespace, user=user, defaults={"role": _check_role(role)}
    )
    return membership


def membership_add(*, actor: Actor, namespace: Namespace, username: str, role: str) -> Membership:
    """Add an existing user, by username, to the namespace with ``role``."""
    namespace_authorize(actor=actor, namespace=namespace, action=Action.MEMBERS_MANAGE)
    role = _check_role(role)
    username = (username or "").strip()
    if not username:
        raise InvalidInput("username is required", field="username")
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise InvalidInput(f"there is no active user named {username!r}", field="username")
    try:
        with transaction.atomic():
            return Membership.objects.create(namespace=namespace, user=user, role=role)
    except IntegrityError as exc:
        raise Conflict(
            f"{username} is already a member of {namespace.name}; change their role instead", field="username"
        ) from exc


def _lock_owners(namespace: Namespace) -> int:
    """Lock the namespace row, then count its owners. Two owners demoting each other
    at once would otherwise each see the other still an owner, and both succeed,
    leaving none: the row lock makes the second wait and count again."""
    Namespace.objects.select_for_update().filter(pk=namespace.pk).first()
    return Membership.objects.filter(namespace=namespace, role=Membership.Role.OWNER).count()


def membership_set_role(*, actor: Actor, membership: Membership, role: str) -> Membership:
    """Change a member's role. The last owner cannot be demoted (a namespace without
    an owner could only be managed by an administrator)."""
    namespace_authorize(actor=actor, namespace=membership.namespace, action=Action.MEMBERS_MANAGE)
    role = _check_role(role)
    with transaction.atomic():
        owners = _lock_owners(membership.namespace)
        current = Membership.objects.select_for_update().get(pk=membership.pk)
        if current.role == Membership.Role.OWNER and role != Membership.Role.OWNER and owners <= 1:
            raise FailedPrecondition(
                f"{current.user} is the last owner of {membership.namespace.name}; "
                "make someone else an owner first",
                field="role",
            )
        current.role = role
        current.save(update_fields=["role"])
    membership.role = role
    return membership


def membership_remove(*, actor: Actor, membership: Membership) -> None:
    """Remove a member. The last owner cannot be removed."""
    namespace_authorize(actor=actor, namespace=membership.namespace, action=Action.MEMBERS_MANAGE)
    with transaction.atomic():
        owners = _lock_owners(membership.namespace)
        current = Membership.objects.select_for_update().filter(pk=membership.pk).first()
        if current is None:
            return
        if current.role == Membership.Role.OWNER and owners <= 1:
            raise FailedPrecondition(
                f"{current.user} is the last owner of {membership.namespace.name}; "
                "make someone else an owner first"
            )
        current.delete()


@transaction.atomic
def user_ensure(
    *, actor: Actor, username: str, superuser: bool = False, password: str | None = None, email: str = ""
) -> tuple[User, bool]:
    """Get or create a user, a member of the default namespace (administrators and
    operators only). ``superuser`` also makes an existing user staff and superuser.
    Returns (user, created)."""
    admin_authorize(actor=actor, action=Action.USER_MANAGE)
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
        actor=actor,
        namespace=namespace_ensure(actor=actor),
        user=user,
        role=Membership.Role.OWNER if superuser else Membership.Role.EDITOR,
    )
    return user, created


def _token_authorize(actor: Actor, owner: Any) -> None:
    """A user manages their own tokens; administrators and operators anyone's."""
    if getattr(actor, "pk", None) is not None and actor.pk == owner.pk:
        if not actor.is_active:
            raise PermissionDenied(f"user {actor} is deactivated")
        return
    admin_authorize(actor=actor, action=Action.TOKEN_MANAGE_OTHERS)


def api_token_create(*, actor: Actor, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Create an API token for ``user``. Returns the row and the plaintext, which is not stored."""
    _token_authorize(actor, user)
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, digest=ApiToken.digest_of(plaintext), prefix=plaintext[:12]
    )
    return token, plaintext


def api_token_authenticate(*, plaintext: str) -> User | None:
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


def api_token_revoke(*, actor: Actor, token: ApiToken) -> None:
    """Revoke a token; it stops authenticating at once."""
    _token_authorize(actor, token.user)
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
