"""Read-side queries for accounts and namespaces."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from apps.core.authz import actor_is_admin
from apps.core.exceptions import NotFound
from apps.core.models import Namespace

User = AbstractBaseUser | AnonymousUser


def namespace_list_for_user(*, user: User) -> QuerySet[Namespace]:
    """Namespaces the user may see: all for admins (staff or superusers), else their memberships."""
    if not user.is_authenticated:
        return Namespace.objects.none()
    if actor_is_admin(user):
        return Namespace.objects.all()
    return Namespace.objects.filter(members=user)


def namespace_get_for_user(*, user: User, name: str) -> Namespace:
    """The named namespace if the user may see it; NotFound otherwise (no existence leak)."""
    try:
        return namespace_list_for_user(user=user).get(name=name)
    except Namespace.DoesNotExist:
        raise NotFound(f"namespace {name!r} not found") from None


def namespace_default_for_user(*, user: User) -> Namespace | None:
    """The namespace a user lands in: 'default' if visible, else their first one."""
    visible = namespace_list_for_user(user=user)
    return visible.filter(name=Namespace.DEFAULT).first() or visible.first()
