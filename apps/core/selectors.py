"""Read-side queries for accounts and namespaces."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import Case, Count, IntegerField, Max, Q, QuerySet, Value, When
from django.utils import timezone

from apps.core.authz import actor_is_admin
from apps.core.exceptions import NotFound
from apps.core.models import Membership, Namespace, ProcessHeartbeat

User = AuthUser | AnonymousUser


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


def process_liveness(*, stale_after_seconds: float) -> dict[str, dict[str, Any]]:
    """For each kind of background process (worker, scheduler), in one query: how many
    have beaten within ``stale_after_seconds`` and how old the newest heartbeat is.
    ``status`` is ``ok`` (at least one alive), ``stale`` (heartbeats, all too old) or
    ``missing`` (none recorded). No hostnames or pids: this is shown to anyone."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_after_seconds)
    rows = {
        row["kind"]: row
        for row in ProcessHeartbeat.objects.order_by()
        .values("kind")
        .annotate(newest=Max("last_seen"), alive=Count("id", filter=Q(last_seen__gte=cutoff)))
    }
    out: dict[str, dict[str, Any]] = {}
    for kind in ProcessHeartbeat.Kind.values:
        row = rows.get(kind)
        if row is None:
            out[kind] = {"status": "missing", "alive": 0, "last_heartbeat_age_seconds": None}
            continue
        age = max(0.0, (now - row["newest"]).total_seconds())
        out[kind] = {
            "status": "ok" if row["alive"] else "stale",
            "alive": row["alive"],
            "last_heartbeat_age_seconds": round(age, 1),
        }
    return out


def membership_list(*, namespace: Namespace) -> QuerySet[Membership]:
    """A namespace's members with their roles, owners first, then by username."""
    order = Case(
        When(role=Membership.Role.OWNER, then=Value(0)),
        When(role=Membership.Role.EDITOR, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return (
        Membership.objects.filter(namespace=namespace)
        .select_related("user")
        .annotate(role_order=order)
        .order_by("role_order", "user__username")
    )


def membership_get(*, namespace: Namespace, membership_id: object) -> Membership:
    """One membership of ``namespace``, or NotFound."""
    try:
        return Membership.objects.select_related("user", "namespace").get(
            namespace=namespace, pk=int(str(membership_id))
        )
    except (ValueError, Membership.DoesNotExist):
        raise NotFound(f"member {membership_id} not found in namespace {namespace.name!r}") from None
