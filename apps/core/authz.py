"""Who may do what in a namespace: Canal's one authorization check.

Every write service calls :func:`namespace_authorize` before it writes anything, so
the web UI, the REST API, the Django admin and the management commands cannot
disagree: they all reach the same table (:data:`REQUIRED_ROLE`). Views call it too,
but only to refuse early (a form page a viewer cannot submit answers 403 instead of
rendering) and to decide which buttons to show (:func:`namespace_permissions`).

Roles are ordered: a viewer reads; an editor also creates, uploads, runs, clones,
terminates, retries, archives and schedules; an owner also deletes and manages
members. Admins (active staff or superusers) may do everything everywhere. A user
who is not a member of a namespace is told it does not exist (NotFound, as the
selectors do), a member whose role is too low gets PermissionDenied (403).

Canal acting on its own behalf (the scheduler firing a recurring run, an operator's
``manage.py`` command) passes an explicit :class:`SystemActor`, never ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from apps.core.exceptions import NotFound, PermissionDenied
from apps.core.models import Membership, Namespace

Role = Membership.Role

#: Roles in increasing order of power.
ROLE_RANK: dict[str, int] = {Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}


class Action(StrEnum):
    """Something an actor does in a namespace. The value reads as "may not <value>"."""

    VIEW = "see this namespace"
    PIPELINE_UPLOAD = "upload pipelines or pipeline versions"
    PIPELINE_EDIT = "create pipelines or rename pipelines and pipeline versions"
    PIPELINE_DELETE = "delete pipelines or pipeline versions"
    EXPERIMENT_CREATE = "create experiments"
    EXPERIMENT_ARCHIVE = "archive or restore experiments"
    EXPERIMENT_DELETE = "delete experiments"
    RUN_CREATE = "start or clone runs"
    RUN_TERMINATE = "terminate runs"
    RUN_RETRY = "retry runs"
    RUN_ARCHIVE = "archive or restore runs"
    RUN_DELETE = "delete runs"
    RECURRING_RUN_CREATE = "create or clone recurring runs"
    RECURRING_RUN_ENABLE = "enable or disable recurring runs"
    RECURRING_RUN_DELETE = "delete recurring runs"
    MEMBERS_MANAGE = "manage the members of this namespace"
    # Admin-only: no membership role allows these.
    NAMESPACE_CREATE = "create namespaces"
    NAMESPACE_DELETE = "delete namespaces"
    USER_MANAGE = "create users or make them administrators"
    TOKEN_MANAGE_OTHERS = "create or revoke other users' API tokens"  # noqa: S105 (not a secret)


#: The least role that allows each action; ``None``: admins (and system actors) only.
REQUIRED_ROLE: dict[Action, str | None] = {
    Action.VIEW: Role.VIEWER,
    Action.PIPELINE_UPLOAD: Role.EDITOR,
    Action.PIPELINE_EDIT: Role.EDITOR,
    Action.EXPERIMENT_CREATE: Role.EDITOR,
    Action.EXPERIMENT_ARCHIVE: Role.EDITOR,
    Action.RUN_CREATE: Role.EDITOR,
    Action.RUN_TERMINATE: Role.EDITOR,
    Action.RUN_RETRY: Role.EDITOR,
    Action.RUN_ARCHIVE: Role.EDITOR,
    Action.RECURRING_RUN_CREATE: Role.EDITOR,
    Action.RECURRING_RUN_ENABLE: Role.EDITOR,
    Action.PIPELINE_DELETE: Role.OWNER,
    Action.EXPERIMENT_DELETE: Role.OWNER,
    Action.RUN_DELETE: Role.OWNER,
    Action.RECURRING_RUN_DELETE: Role.OWNER,
    Action.MEMBERS_MANAGE: Role.OWNER,
    Action.NAMESPACE_CREATE: None,
    Action.NAMESPACE_DELETE: None,
    Action.USER_MANAGE: None,
    Action.TOKEN_MANAGE_OTHERS: None,
}


@dataclass(frozen=True)
class SystemActor:
    """Canal acting on its own: the scheduler firing a schedule, the engine, or an
    operator's management command (who has shell access, hence the database anyway).
    Allowed everything; named so logs and code say who acted."""

    name: str
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    def __str__(self) -> str:
        return f"<{self.name}>"


#: The scheduler firing recurring runs (their runs record the schedule's author).
SCHEDULER = SystemActor("scheduler")
#: ``manage.py`` commands run by whoever operates the server (see README "Roles").
OPERATOR = SystemActor("operator")

#: A user (from a request, a token or a command's ``--user``) or a system actor.
Actor = Any


def actor_is_system(actor: Actor) -> bool:
    """Whether ``actor`` is Canal itself rather than a person."""
    return isinstance(actor, SystemActor)


def actor_is_admin(actor: Actor) -> bool:
    """An active staff user or superuser: sees and may do everything."""
    if actor is None or actor_is_system(actor):
        return False
    return bool(
        getattr(actor, "is_authenticated", False)
        and getattr(actor, "is_active", False)
        and (getattr(actor, "is_staff", False) or getattr(actor, "is_superuser", False))
    )


def actor_user(actor: Actor) -> Any:
    """The user to record as author (``created_by``): the actor if it is a signed-in
    user, else None (system actors author nothing)."""
    if actor is None or actor_is_system(actor) or not getattr(actor, "is_authenticated", False):
        return None
    return actor


def _check_person(actor: Actor) -> None:
    if actor is None:
        # A missing actor is a bug in the caller, not "the system": refuse loudly.
        raise PermissionDenied("no acting user was given for this action")
    if not getattr(actor, "is_authenticated", False):
        raise PermissionDenied("sign in first")
    if not getattr(actor, "is_active", False):
        raise PermissionDenied(f"user {actor} is deactivated")


def namespace_role(*, actor: Actor, namespace: Namespace) -> str | None:
    """The actor's membership role in ``namespace`` (None: not a member)."""
    if actor_is_system(actor) or not getattr(actor, "is_authenticated", False):
        return None
    return (
        Membership.objects.filter(namespace=namespace, user_id=actor.pk)
        .values_list("role", flat=True)
        .first()
    )


def role_allows(role: str | None, action: Action) -> bool:
    """Whether a member with ``role`` may do ``action`` (the table, nothing else)."""
    required = REQUIRED_ROLE[action]
    if role is None or required is None:
        return False
    return ROLE_RANK.get(role, 0) >= ROLE_RANK[required]


def admin_authorize(*, actor: Actor, action: Action) -> None:
    """For actions outside any one namespace (creating one, other users' tokens):
    admins and system actors only."""
    if actor_is_system(actor):
        return
    _check_person(actor)
    if not actor_is_admin(actor):
        raise PermissionDenied(f"only administrators may {action.value}")


def namespace_authorize(*, actor: Actor, namespace: Namespace, action: Action) -> None:
    """Allow ``actor`` to do ``action`` in ``namespace``, or raise.

    NotFound when the actor is not a member (the namespace's objects do not exist
    for them); PermissionDenied when their role is too low, or for an anonymous,
    deactivated or missing actor. System actors and admins are always allowed.
    """
    _authorize(actor=actor, namespace=namespace, required=REQUIRED_ROLE[action], what=action.value)


#: KFP's AuthService verbs (``GET /apis/v2beta1/auth``) read with the table above: every
#: read needs a viewer, every create an editor, every delete an owner.
VERB_ROLE: dict[str, str] = {"GET": Role.VIEWER, "CREATE": Role.EDITOR, "DELETE": Role.OWNER}


def namespace_authorize_verb(*, actor: Actor, namespace: Namespace, verb: str) -> None:
    """Allow ``actor`` to ``verb`` (GET, CREATE or DELETE) in ``namespace``, or raise, with
    the same answers as :func:`namespace_authorize` (KFP's Authorize asks this)."""
    what = {"GET": "see this namespace", "CREATE": "create things here", "DELETE": "delete things here"}
    _authorize(actor=actor, namespace=namespace, required=VERB_ROLE[verb], what=what[verb])


def _authorize(*, actor: Actor, namespace: Namespace, required: str | None, what: str) -> None:
    if actor_is_system(actor):
        return
    _check_person(actor)
    if actor_is_admin(actor):
        return
    role = namespace_role(actor=actor, namespace=namespace)
    if role is None:
        raise NotFound(f"namespace {namespace.name!r} not found")
    if required is None or ROLE_RANK.get(role, 0) < ROLE_RANK[required]:
        needs = f"the {required} role" if required else "an administrator"
        raise PermissionDenied(f"{role}s of namespace {namespace.name!r} may not {what}; this needs {needs}")


class NamespacePermissions:
    """What the actor may do in one namespace, for templates: ``{% if can.run_delete %}``.

    Every :class:`Action` is an attribute (its lower-case name), computed from the
    same table :func:`namespace_authorize` uses, so a page never offers a button
    the service would refuse.
    """

    def __init__(self, *, role: str | None, admin: bool) -> None:
        self.role = "admin" if admin else role
        self._allowed = {action.name.lower(): admin or role_allows(role, action) for action in Action}

    def __getattr__(self, name: str) -> bool:
        try:
            allowed: dict[str, bool] = self.__dict__["_allowed"]  # no recursion before __init__ set it
            return allowed[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> bool:
        return self._allowed[name]

    def __repr__(self) -> str:
        return f"NamespacePermissions(role={self.role!r})"


NO_PERMISSIONS = NamespacePermissions(role=None, admin=False)


def namespace_permissions(*, actor: Actor, namespace: Namespace | None) -> NamespacePermissions:
    """The actor's permissions in ``namespace`` (none without a namespace or a signed-in user)."""
    # ``not namespace``, not ``is None``: request.namespace is a lazy object that may wrap None.
    if not namespace or actor is None or not getattr(actor, "is_authenticated", False):
        return NO_PERMISSIONS
    if actor_is_system(actor) or actor_is_admin(actor):
        return NamespacePermissions(role=None, admin=True)
    if not getattr(actor, "is_active", False):
        return NO_PERMISSIONS
    return NamespacePermissions(role=namespace_role(actor=actor, namespace=namespace), admin=False)
