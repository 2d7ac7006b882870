"""The role matrix: every route of the URL conf, for every kind of caller, on namespace A's objects.

Each cell sends one request and asserts the exact status the caller must get and, where
the request is refused (or is a read), that nothing in the database changed; where a
write is allowed, that it did change something (a 302 carrying an error message is not
a success). The routes come from ``get_resolver()``, walked recursively: a route with
no rule in ``RULES`` fails the test, so whoever adds a route must say who may use it.

Callers (``ROLES``): anonymous; a bad bearer token (``Bearer nothing``); a deactivated
user (a former admin and owner of A, with a session and a token); a viewer, an editor
and an owner of namespace A; the owner of another namespace B; and an admin (staff and
superuser, member of nothing). The UI and the admin are called with sessions (and a
valid CSRF token, so CSRF is never what refuses a request), the API with bearer tokens.

The expectations are written here from the roles as the README states them (viewer <
editor < owner; admins may do everything), not from ``apps.core.authz``, so the test
checks the code against the specification rather than against itself.

Admin routes: every one is covered by a generic rule. Members (and everyone signed out)
get the admin's login redirect, for GET and POST. Staff get each page (add and delete
pages only for the models the admin lets them add or delete, else 403), and POSTs to
the delete pages, which delete through the services where the model allows it. Other
staff POSTs to the admin are not sent here; tests/web/test_admin.py covers them.
"""

from __future__ import annotations

import copy
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.choices import RecurringRunMode, RecurringRunStatus, RuntimeState, StorageState
from apps.core.middleware import SESSION_NAMESPACE_KEY
from apps.experiments.models import Experiment
from apps.pipelines.models import Pipeline
from apps.runs.models import Run
from apps.schedules.models import RecurringRun
from tests.factories import HELLO_IR_TEXT, TaskFactory
from tests.hardening.world import NS_A, RANK, World, build_world, deactivate, snapshot

ROLES = ("anonymous", "bad_token", "deactivated", "viewer", "editor", "owner", "outsider", "admin")
SIGNED_OUT = {"anonymous", "bad_token", "deactivated"}
CSRF = "m" * 32  # a well-formed CSRF secret, set as the cookie and sent as the header


def _make_clients(world: World) -> None:
    """A session client and an API client per caller (the deactivated one is switched
    off after logging in and getting its token, as if an admin did it later)."""
    for role in ROLES:
        ui = Client(enforce_csrf_checks=True)
        ui.cookies[settings.CSRF_COOKIE_NAME] = CSRF
        api = APIClient()
        if role == "bad_token":
            ui.defaults["HTTP_AUTHORIZATION"] = "Bearer nothing"
            api.credentials(HTTP_AUTHORIZATION="Bearer nothing")
        elif role != "anonymous":
            user = world.users[role]
            ui.force_login(user)
            session = ui.session
            session[SESSION_NAMESPACE_KEY] = NS_A  # ignored for the outsider: A is not theirs
            session.save()
            api.credentials(HTTP_AUTHORIZATION=f"Bearer {world.tokens[role]}")
        world.ui[role], world.api[role] = ui, api
    deactivate(world.users["deactivated"])


# --- what each route is ------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """What one method of one route does, and so what each caller must get.

    kind: ``public`` (200 for all), ``login_page``, ``read``, ``form`` (the GET of a write
    form), ``write``, ``check`` (a question about the caller's role: refused below
    ``needs`` like a write, but never changes anything), ``session`` (signed-in callers
    only: namespace switch, logout), ``not_allowed`` (405), ``api_unknown`` (404),
    ``unimplemented`` (a KFP method Canal does not carry out: 501 for members, nothing
    changes). ``needs``: the least role. ``scope``:
    ``a`` when the request names namespace A's objects (an outsider gets 404), ``own``
    when it works in the caller's current namespace (an outsider acts in their own).
    """

    kind: str
    needs: str = "viewer"
    scope: str = "a"
    ok: int | None = None  # the success status, if not the surface's usual one
    params: dict[str, str] = field(default_factory=dict)  # route parameter -> world object
    query: Callable[[World], str] | None = None
    data: Callable[[World], Any] | None = None
    prepare: Callable[[World], None] | None = None
    multipart: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    outsider: int | None = None  # an outsider's status when it is not the rule's (still refused)


def _upload(name: str = "matrix.yaml") -> io.BytesIO:
    handle = io.BytesIO(HELLO_IR_TEXT.encode())
    handle.name = name
    return handle


def _set(model: Any, pk: Any, **fields: Any) -> None:
    model.objects.filter(pk=pk).update(**fields)


def _run_running(w: World) -> None:
    _set(Run, w.run.pk, state=RuntimeState.RUNNING)


def _run_archived(w: World) -> None:
    _set(Run, w.run.pk, storage_state=StorageState.ARCHIVED)


RERUN_TASK = "7e57a5ca-0000-4000-8000-00000000e540"  # the step the re-run rules re-run


def _rerunnable_step(w: World) -> None:
    # The world's run is FAILED; give it the HELLO pipeline's own step (no inputs to replay).
    TaskFactory(id=RERUN_TASK, run=w.run, name="echo", key="root/echo", state=RuntimeState.FAILED)


def _experiment_archived(w: World) -> None:
    _set(Experiment, w.experiment.pk, storage_state=StorageState.ARCHIVED)


def _schedule_enabled(w: World) -> None:
    _set(
        RecurringRun,
        w.recurring_run.pk,
        mode=RecurringRunMode.ENABLE,
        status=RecurringRunStatus.ENABLED,
        next_fire_time=timezone.now() + timedelta(hours=1),
    )


def _spec() -> dict[str, Any]:
    return yaml.safe_load(HELLO_IR_TEXT)


def _version_ref(w: World) -> dict[str, str]:
    return {"pipeline_id": str(w.pipeline.pk), "pipeline_version_id": str(w.version.pk)}


NS_QUERY = lambda w: f"namespace={NS_A}"  # noqa: E731
PREVIEW_QUERY = "trigger_type=PERIODIC&interval_value=1&interval_unit=3600"
READ = Op("read")
READ_OWN = Op("read", scope="own")
NOT_ALLOWED = Op("not_allowed")
TRIGGER = {
    "trigger-trigger_type": "PERIODIC",
    "trigger-interval_value": "1",
    "trigger-interval_unit": "3600",
    "trigger-timezone": "UTC",
    "trigger-max_concurrency": "1",
}

#: Every Canal route (by URL name), method by method. A route missing here fails the test.
RULES: dict[str, dict[str, Op]] = {
    # core
    "healthz": {"GET": Op("public")},
    "login": {"GET": Op("login_page")},
    "logout": {"POST": Op("session")},
    "home": {"GET": Op("read", scope="own", ok=302)},
    "namespace-switch": {"POST": Op("session", data=lambda w: {"namespace": NS_A, "next": "/"})},
    "namespace-members": {
        "GET": READ,
        "POST": Op("write", "owner", data=lambda w: {"username": "newcomer", "role": "viewer"}),
    },
    "namespace-member-role": {
        "POST": Op("write", "owner", data=lambda w: {f"m{w.membership.pk}-role": "editor"}),
    },
    "namespace-member-remove": {"POST": Op("write", "owner")},
    # pipelines
    "pipelines:list": {"GET": READ_OWN},
    "pipelines:upload": {
        "GET": Op("form", "editor", scope="own"),
        "POST": Op("write", "editor", scope="own", data=lambda w: {"file": _upload(), "name": "uploaded"}),
    },
    "pipelines:detail": {"GET": READ},
    "pipelines:upload-version": {
        "GET": Op("form", "editor"),
        "POST": Op("write", "editor", data=lambda w: {"file": _upload(), "name": "uploaded-version"}),
    },
    "pipelines:delete": {"POST": Op("write", "owner", params={"pipeline_id": "spare_pipeline"})},
    # An outsider's selection of A's pipelines is empty: "select at least one", nothing done.
    "pipelines:bulk-delete": {
        "POST": Op(
            "write",
            "owner",
            outsider=302,
            data=lambda w: {"pipeline": [str(w.spare_pipeline.pk)], "cascade": "on"},
        )
    },
    "pipelines:version-delete": {"POST": Op("write", "owner")},
    # experiments
    "experiments:list": {"GET": READ_OWN},
    "experiments:new": {
        "GET": Op("form", "editor", scope="own"),
        "POST": Op("write", "editor", scope="own", data=lambda w: {"display_name": "made here"}),
    },
    "experiments:detail": {"GET": READ},
    "experiments:archive": {"POST": Op("write", "editor")},
    "experiments:unarchive": {"POST": Op("write", "editor", prepare=_experiment_archived)},
    # runs
    "runs:list": {"GET": READ_OWN},
    "runs:new": {
        "GET": Op("form", "editor", query=lambda w: f"version={w.version.pk}"),
        "POST": Op(
            "write",
            "editor",
            query=lambda w: f"version={w.version.pk}",
            data=lambda w: {
                "display_name": "from the form",
                "run_type": "one-off",
                "experiment": str(w.experiment.pk),
            },
        ),
    },
    # An outsider's selection of A's runs is empty: "select at least one run", nothing done.
    "runs:bulk": {
        "POST": Op(
            "write",
            "owner",
            outsider=302,
            data=lambda w: {"action": "delete", "run": [str(w.run.pk)], "next": "/runs/"},
        )
    },
    "runs:compare": {"GET": Op("read", query=lambda w: f"run={w.run.pk}&run={w.other_run.pk}")},
    "runs:detail": {"GET": READ},
    "runs:status": {"GET": READ},
    "runs:graph": {"GET": READ},
    "runs:panel": {
        "GET": Op("read", query=lambda w: f"task={w.task.pk}", headers={"HTTP_X_CANAL_FRAGMENT": "1"})
    },
    "runs:tasks": {"GET": READ},
    "runs:task-log": {"GET": READ},
    "runs:task-log-download": {"GET": READ},
    "runs:terminate": {"POST": Op("write", "editor", prepare=_run_running)},
    "runs:retry": {"POST": Op("write", "editor")},
    "runs:archive": {"POST": Op("write", "editor")},
    "runs:unarchive": {"POST": Op("write", "editor", prepare=_run_archived)},
    "runs:delete": {"POST": Op("write", "owner")},
    "runs:task-rerun": {
        "POST": Op("write", "editor", params={"task_id": "=" + RERUN_TASK}, prepare=_rerunnable_step)
    },
    # executions (the steps of every run)
    "executions:list": {"GET": READ_OWN},
    "executions:detail": {"GET": READ},
    # recurring runs
    "schedules:list": {"GET": READ_OWN},
    "schedules:preview": {
        "GET": Op(
            "read", scope="own", query=lambda w: "trigger_type=PERIODIC&interval_value=1&interval_unit=3600"
        )
    },
    "schedules:detail": {"GET": READ},
    "schedules:enable": {"POST": Op("write", "editor")},
    "schedules:disable": {"POST": Op("write", "editor", prepare=_schedule_enabled)},
    "schedules:delete": {"POST": Op("write", "owner")},
    "schedules:clone": {
        "GET": Op("form", "editor"),
        "POST": Op("write", "editor", data=lambda w: {"display_name": "cloned", **TRIGGER}),
    },
    # artifacts
    "artifacts:list": {"GET": READ_OWN},
    "artifacts:detail": {"GET": READ},
    "artifacts:download": {"GET": READ},
    "artifacts:view": {"GET": READ},
    "artifacts:frame": {"GET": Op("read", params={"artifact_id": "html_artifact"})},
    # the REST API
    "api:healthz": {"GET": Op("public")},
    "api:openapi": {"GET": READ_OWN},
    "api:docs": {"GET": READ_OWN},
    "api:not-found": {"GET": Op("api_unknown"), "POST": Op("api_unknown"), "DELETE": Op("api_unknown")},
    "api:pipelines": {
        "GET": Op("read", query=NS_QUERY),
        "POST": Op("write", "editor", data=lambda w: {"name": "posted-empty", "namespace": NS_A}),
    },
    "api:pipeline-upload": {
        "POST": Op(
            "write",
            "editor",
            multipart=True,
            query=lambda w: f"namespace={NS_A}&name=uploaded",
            data=lambda w: {"uploadfile": _upload()},
        )
    },
    "api:version-upload": {
        "POST": Op(
            "write",
            "editor",
            multipart=True,
            query=lambda w: f"pipelineid={w.pipeline.pk}&name=uploaded-version",
            data=lambda w: {"uploadfile": _upload()},
        )
    },
    "api:pipeline-create": {
        "POST": Op(
            "write",
            "editor",
            data=lambda w: {
                "pipeline": {"display_name": "created", "namespace": NS_A},
                "pipeline_version": {"pipeline_spec": _spec()},
            },
        )
    },
    "api:pipeline-by-name": {"GET": Op("read", params={"name": "pipeline_name"}, query=NS_QUERY)},
    "api:pipeline": {
        "GET": READ,
        "PATCH": Op("write", "editor", data=lambda w: {"display_name": "renamed"}),
        "DELETE": Op(
            "write", "owner", params={"pipeline_id": "spare_pipeline"}, query=lambda w: "cascade=true"
        ),
    },
    "api:pipeline-versions": {
        "GET": READ,
        "POST": Op("write", "editor", data=lambda w: {"name": "posted", "pipeline_spec": _spec()}),
    },
    "api:pipeline-version": {
        "GET": READ,
        "PATCH": Op("write", "editor", data=lambda w: {"display_name": "renamed"}),
        "DELETE": Op("write", "owner"),
    },
    "api:experiments": {
        "GET": Op("read", query=NS_QUERY),
        "POST": Op("write", "editor", data=lambda w: {"display_name": "posted", "namespace": NS_A}),
    },
    "api:experiment": {
        "GET": READ,
        "DELETE": Op("write", "owner", params={"experiment_id": "empty_experiment"}),
    },
    "api:experiment-archive": {"POST": Op("write", "editor")},
    "api:experiment-unarchive": {"POST": Op("write", "editor", prepare=_experiment_archived)},
    "api:runs": {
        "GET": Op("read", query=NS_QUERY),
        "POST": Op(
            "write",
            "editor",
            data=lambda w: {
                "display_name": "posted",
                "experiment_id": str(w.experiment.pk),
                "pipeline_version_reference": _version_ref(w),
            },
        ),
    },
    "api:run": {"GET": READ, "DELETE": Op("write", "owner")},
    "api:run-terminate": {"POST": Op("write", "editor", prepare=_run_running)},
    "api:run-retry": {"POST": Op("write", "editor")},
    "api:run-task-rerun": {
        "POST": Op("write", "editor", params={"task_id": "=" + RERUN_TASK}, prepare=_rerunnable_step)
    },
    "api:run-archive": {"POST": Op("write", "editor")},
    "api:run-unarchive": {"POST": Op("write", "editor", prepare=_run_archived)},
    "api:run-artifact-read": {"GET": READ},
    "api:run-task-log": {"GET": READ},
    "api:recurring-runs": {
        "GET": Op("read", query=NS_QUERY),
        "POST": Op(
            "write",
            "editor",
            data=lambda w: {
                "display_name": "posted",
                "experiment_id": str(w.experiment.pk),
                "pipeline_version_reference": _version_ref(w),
                "mode": "DISABLE",
                "trigger": {"periodic_schedule": {"interval_second": 3600}},
            },
        ),
    },
    "api:recurring-run": {"GET": READ, "DELETE": Op("write", "owner")},
    "api:recurring-run-enable": {"POST": Op("write", "editor")},
    "api:recurring-run-disable": {"POST": Op("write", "editor", prepare=_schedule_enabled)},
    # KFP's AuthService, asked whether the caller may create in A: an editor's question.
    "api:auth": {
        "GET": Op("check", "editor", query=lambda w: f"namespace={NS_A}&resources=VIEWERS&verb=CREATE")
    },
    "api:filters": {"GET": READ_OWN},
    # Methods with no meaning in Canal (README, "Using the kfp client and CLI").
    "api:report-workflow": {"POST": Op("unimplemented", scope="own", data=lambda w: '{"kind": "Workflow"}')},
    "api:report-scheduled-workflow": {
        "POST": Op("unimplemented", scope="own", data=lambda w: '{"kind": "ScheduledWorkflow"}')
    },
    "api:visualization": {"POST": Op("unimplemented", data=lambda w: {"type": "TABLE", "source": "x"})},
}

#: Routes whose parameters cannot be filled from the world, with the reason. None today:
#: a route added here is not tested by the matrix, so say why.
UNFILLABLE: dict[str, str] = {}

#: Route parameter -> the world object (or value) it takes, unless a rule says otherwise.
FILL: dict[str, str] = {
    "pipeline_id": "pipeline",
    "pipeline_version_id": "unused_version",
    "experiment_id": "experiment",
    "run_id": "run",
    "task_id": "task",
    "node_id": "task",
    "artifact_name": "=out",
    "artifact_id": "artifact",
    "recurring_run_id": "recurring_run",
    "membership_id": "membership",
    "name": "namespace_a",
    "unknown": "=no/such/method",
    "namespace": "namespace_a",
    "index": "=0",
    # admin
    "app_label": "=pipelines",
    "content_type_id": "pipeline_content_type",
    "id": "viewer",
}

# The admin: which models it lets staff add or delete (everything else is view-only
# there, and written through the UI, the API or the admin's service-backed actions).
ADMIN_ADDABLE = {"auth_user", "auth_group", "core_namespace"}
ADMIN_DELETABLE = {
    "auth_user",
    "auth_group",
    "core_namespace",
    "pipelines_pipeline",
    "pipelines_pipelineversion",
    "experiments_experiment",
    "schedules_recurringrun",
    "runs_run",  # through run_delete, which refuses an active run
    # Operational records: deleting a login-failure record is how an admin lifts a lockout.
    "core_processheartbeat",
    "axes_accessattempt",
    "axes_accesslog",
    "axes_accessfailurelog",
}
# The object each admin model page is opened on (the delete routes delete it when allowed).
ADMIN_OBJECT = {
    "auth_user": "viewer",
    "auth_group": "group",
    "core_namespace": "namespace_a_pk",
    "core_membership": "membership",
    "core_apitoken": "token_row",
    "pipelines_pipeline": "spare_pipeline",
    "pipelines_pipelineversion": "unused_version",
    "experiments_experiment": "empty_experiment",
    "runs_run": "run",
    "runs_task": "task",
    "runs_taskattempt": "attempt",
    "artifacts_artifact": "artifact",
    "schedules_recurringrun": "recurring_run",
    "core_processheartbeat": "heartbeat",
    "axes_accessattempt": "access_attempt",
    "axes_accesslog": "access_log",
    "axes_accessfailurelog": "access_failure_log",
}
# Deleting these is refused by Django's own check (PROTECT: A still holds objects).
ADMIN_PROTECTED = {"core_namespace"}
# Deleting these would delete rows the admin may not delete (a user's memberships and
# tokens), so the admin refuses (403): users are deactivated, not deleted.
ADMIN_DELETE_REFUSED = {"auth_user"}


def _value(world: World, ref: str) -> str:
    if ref.startswith("="):
        return ref[1:]
    special = {
        "namespace_a": lambda: world.a.name,
        "namespace_a_pk": lambda: world.a.pk,
        "pipeline_name": lambda: world.pipeline.name,
        "pipeline_content_type": lambda: ContentType.objects.get_for_model(Pipeline).pk,
        "viewer": lambda: world.users["viewer"].pk,
    }
    if ref in special:
        return str(special[ref]())
    return str(world.objects[ref].pk)


# --- walking the URL conf --------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One URL pattern: its key (namespaced name, or its pattern if unnamed) and parameters."""

    key: str
    name: str | None
    pattern: str
    params: tuple[str, ...]


def _params(pattern: Any) -> list[str]:
    converters = getattr(pattern, "converters", None)
    if converters:
        return list(converters)
    regex = getattr(pattern, "regex", None)
    return list(regex.groupindex) if regex is not None else []


def _walk(patterns: list[Any], prefix: str, namespaces: list[str], params: list[str]) -> Iterator[Route]:
    for p in patterns:
        here = params + _params(p.pattern)
        text = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, text, namespaces + ([p.namespace] if p.namespace else []), here)
        elif isinstance(p, URLPattern):
            name = ":".join([*namespaces, p.name]) if p.name else None
            yield Route(key=name or text, name=name, pattern=text, params=tuple(here))


def all_routes() -> list[Route]:
    """Every route of the URL conf (UI, API and admin)."""
    return list(_walk(get_resolver().url_patterns, "", [], []))


# --- expectations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What a cell must answer: a status, where it redirects, and whether the database changes."""

    status: int
    location: tuple[str, ...] = ()  # the redirect's path must start with one of these
    changes: bool | None = False  # True: must change; False: must not; None: either


def _allowed(role: str, needs: str) -> bool:
    return role == "admin" or RANK.get(role, 0) >= RANK[needs]


def expect_canal(route: Route, method: str, op: Op, role: str) -> Expect:
    """The expectation for a UI or API cell, from the roles as documented."""
    api = route.pattern.startswith("apis/")
    if op.kind == "public":
        return Expect(200)
    if op.kind == "login_page":
        return Expect(200) if role in SIGNED_OUT else Expect(302)
    if role in SIGNED_OUT:
        return Expect(401) if api else Expect(302, location=("/login/",))
    success = op.ok or (200 if api or method == "GET" else 302)
    if op.kind == "session":
        return Expect(302, changes=None)
    if op.kind == "not_allowed":
        return Expect(405)
    if op.kind == "api_unknown":
        return Expect(404)
    if op.kind == "unimplemented":
        return Expect(404 if role == "outsider" and op.scope == "a" else 501)
    if role == "outsider":
        if op.scope == "own":
            return Expect(success, changes=op.kind == "write")
        return Expect(op.outsider or 404)
    if op.kind == "read":
        return Expect(success)
    if not _allowed(role, op.needs):
        return Expect(403)
    return Expect(success, changes=op.kind == "write")  # a check changes nothing


def _admin_model_view(name: str) -> tuple[str, str] | None:
    """("pipelines_pipeline", "change") for "admin:pipelines_pipeline_change"."""
    bare = name.removeprefix("admin:")
    for view in ("changelist", "add", "history", "delete", "change"):
        if bare.endswith("_" + view):
            return bare[: -len(view) - 1], view
    return None


def expect_admin(route: Route, method: str, role: str) -> Expect | None:
    """The expectation for an admin cell (None: not sent, see the module docstring)."""
    staff = role == "admin"
    if route.name == "admin:login":
        if method == "POST":
            return None
        return Expect(302) if staff else Expect(200)
    if not staff:
        if route.name == "admin:logout":
            return Expect(302, location=("/admin/",))  # the admin sends non-staff to its index
        # Signed-out callers get the site's login (most admin views need a login there
        # first), signed-in non-staff the admin's own: both a login page, nothing served.
        return Expect(302, location=("/admin/login/", "/login/"))
    unnamed = route.name is None
    if method == "POST":
        mv = _admin_model_view(route.name or "")
        if mv is None or mv[1] != "delete":
            return None
        model, _ = mv
        if model not in ADMIN_DELETABLE or model in ADMIN_DELETE_REFUSED:
            return Expect(403)
        if model in ADMIN_PROTECTED:
            return Expect(200)  # the page says what protects it; nothing is deleted
        return Expect(302, changes=True)
    if unnamed:
        return Expect(404) if route.pattern.endswith("(?P<url>.*)$") else Expect(302)
    simple = {
        "admin:logout": Expect(405),
        "admin:autocomplete": Expect(403),  # no model named: refused
        "admin:view_on_site": Expect(302),
    }
    if route.name in simple:
        return simple[route.name]
    mv = _admin_model_view(route.name or "")
    if mv is not None:
        model, view = mv
        if view == "add" and model not in ADMIN_ADDABLE:
            return Expect(403)
        if view == "delete" and model not in ADMIN_DELETABLE:
            return Expect(403)
    return Expect(200)


# --- sending --------------------------------------------------------------------------------


def _url(world: World, route: Route, op: Op | None) -> str:
    overrides = op.params if op else {}
    if route.key.startswith("admin:") or route.pattern.startswith("admin/"):
        mv = _admin_model_view(route.name or "")
        model = mv[0] if mv else None
        if route.name is None:  # admin/<app>/<model>/<object_id>/ and the catch-all
            if "<path:object_id>" in route.pattern:
                app, model_name = route.pattern.split("/")[1:3]
                obj = _value(world, ADMIN_OBJECT[f"{app}_{model_name}"])
                return "/" + route.pattern.replace("<path:object_id>", obj)
            return "/admin/no-such-page/"
        kwargs = {}
        for param in route.params:
            if param == "object_id":
                kwargs[param] = _value(world, ADMIN_OBJECT[model]) if model else _value(world, "pipeline")
            else:
                kwargs[param] = _value(world, FILL[param])
        return reverse(route.name, kwargs=kwargs)
    kwargs = {param: _value(world, overrides.get(param) or FILL[param]) for param in route.params}
    assert route.name is not None
    url = reverse(route.name, kwargs=kwargs)
    if op and op.query:
        url += "?" + op.query(world)
    return url


def _send(world: World, role: str, surface: str, method: str, url: str, op: Op | None) -> Any:
    data = op.data(world) if op and op.data else {}
    if surface == "admin" and method == "POST":
        data = {"post": "yes"}  # a delete page's confirmation (other admin forms are refused anyway)
    if surface == "api":
        client: Any = world.api[role]
        if method == "GET":
            return client.get(url)
        fmt = "multipart" if op and op.multipart else "json"
        return getattr(client, method.lower())(url, data, format=fmt)
    client = world.ui[role]
    headers = {"HTTP_X_CSRFTOKEN": CSRF, **(op.headers if op else {})}
    if method == "GET":
        return client.get(url, **headers)
    if method == "POST":
        return client.post(url, data, **headers)
    return getattr(client, method.lower())(url, **headers)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    changed = [name for name in before if before[name] != after[name]]
    return ", ".join(changed) or "nothing"


@dataclass(frozen=True)
class Cell:
    """One request to send and what it must get."""

    route: Route
    method: str
    role: str
    surface: str
    op: Op | None
    expect: Expect


def plan_cells(routes: list[Route]) -> tuple[list[Cell], list[str]]:
    """Every cell to send, and the routes nobody classified (which fail the test)."""
    cells: list[Cell] = []
    unclassified: list[str] = []
    for route in routes:
        if route.key in UNFILLABLE:
            continue
        if route.pattern.startswith("admin/"):
            for method in ("GET", "POST"):
                for role in ROLES:
                    expected = expect_admin(route, method, role)
                    if expected is not None:
                        cells.append(Cell(route, method, role, "admin", None, expected))
            continue
        ops = RULES.get(route.key)
        if ops is None:
            unclassified.append(route.key)
            continue
        surface = "api" if route.pattern.startswith("apis/") else "ui"
        methods = dict(ops)
        # A write-only route still gets GETs: they must change nothing (405, or the login).
        methods.setdefault("GET", NOT_ALLOWED)
        if surface == "api" and methods["GET"].kind not in ("public", "api_unknown"):
            # KFP's only PATCHes are UpdatePipeline and UpdatePipelineVersion.
            methods.setdefault("PATCH", NOT_ALLOWED)
        for method, op in methods.items():
            for role in ROLES:
                cells.append(Cell(route, method, role, surface, op, expect_canal(route, method, op, role)))
    return cells, unclassified


def run_cell(world: World, cell: Cell) -> str | None:
    """Send one cell in a savepoint that is rolled back; a description of what went wrong, or None."""
    url = _url(world, cell.route, cell.op)
    saved_ui_cookies = copy.deepcopy(world.ui[cell.role].cookies)
    try:
        with transaction.atomic():
            if cell.op and cell.op.prepare:
                cell.op.prepare(world)
                before = snapshot()
            else:
                # The same before every cell (each is rolled back): read once, one query
                # per model fewer per cell (on MariaDB the matrix took 34 s instead of 57 s).
                if world.baseline is None:
                    world.baseline = snapshot()
                before = world.baseline
            try:
                response = _send(world, cell.role, cell.surface, cell.method, url, cell.op)
            except Exception as exc:  # a 500: the test client re-raises the view's exception
                transaction.set_rollback(True)
                return f"raised {type(exc).__name__}: {exc}"
            after = snapshot()
            transaction.set_rollback(True)
    finally:
        world.ui[cell.role].cookies = saved_ui_cookies
    if response.streaming:
        # Consuming it lets the test client close it (a file download) the way a server would.
        b"".join(response.streaming_content)
    problems = []
    if response.status_code != cell.expect.status:
        problems.append(f"status {response.status_code}, expected {cell.expect.status}")
    if cell.expect.location:
        location = response.get("Location", "")
        if not location.startswith(cell.expect.location):
            problems.append(f"redirects to {location!r}, expected one of {cell.expect.location}")
    if cell.expect.changes is False and after != before:
        problems.append(f"changed {_diff(before, after)}")
    if cell.expect.changes is True and after == before:
        problems.append("changed nothing (the write did not happen)")
    return "; ".join(problems) or None


# --- the tests ------------------------------------------------------------------------------


@pytest.fixture
def world(db: Any) -> World:
    built = build_world()
    _make_clients(built)
    return built


def test_every_route_has_a_rule_and_can_be_filled() -> None:
    """New routes must be classified here: a route without a rule fails."""
    routes = all_routes()
    _, unclassified = plan_cells(routes)
    assert not unclassified, (
        "routes with no expectation in tests/hardening/test_role_matrix.py RULES (say who may use "
        f"them): {unclassified}"
    )
    stale = set(RULES) - {r.key for r in routes}
    assert not stale, f"RULES names routes that no longer exist: {sorted(stale)}"
    for route in routes:
        if route.pattern.startswith("admin/") or route.key in UNFILLABLE:
            continue
        unfilled = [
            p
            for p in route.params
            if p not in FILL and all(p not in op.params for op in RULES[route.key].values())
        ]
        assert not unfilled, f"{route.key}: no value for {unfilled}; add to FILL or UNFILLABLE"


def test_role_matrix(world: World, hardening_figures: dict[str, str]) -> None:
    """Every cell gets its status, and nothing changes where it is refused."""
    started = time.monotonic()
    cells, unclassified = plan_cells(all_routes())
    assert not unclassified
    failures = []
    for cell in cells:
        problem = run_cell(world, cell)
        if problem:
            failures.append(f"{cell.method} {cell.route.key} as {cell.role}: {problem}")
    elapsed = time.monotonic() - started
    # Every cell was rolled back, so the state each cell was compared against held throughout.
    assert world.baseline is not None and snapshot() == world.baseline
    routes = {c.route.key for c in cells}
    requests = {(c.route.key, c.method) for c in cells}
    hardening_figures["role matrix cells"] = (
        f"{len(cells)} ({len(routes)} routes, {len(requests)} route-methods, {len(ROLES)} callers; "
        f"{elapsed:.1f} s)"
    )
    assert not failures, f"{len(failures)} of {len(cells)} cells are wrong:\n" + "\n".join(failures)
