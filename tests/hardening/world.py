"""The world the role tests share: namespace A with one of each object, the people who
act on it (viewer, editor, owner of A; the owner of another namespace B; an admin who
is a member of nothing; a deactivated former admin), and a database snapshot to prove
that a refused request changed nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from apps.artifacts.models import Artifact
from apps.core.choices import RecurringRunMode, RecurringRunStatus, RuntimeState, TaskKind
from apps.core.models import ApiToken, Membership, Namespace, ProcessHeartbeat
from apps.core.services import api_token_create, process_heartbeat_record
from apps.experiments.models import Experiment
from apps.pipelines.models import Pipeline, PipelineVersion
from apps.runs.models import Run, Task, TaskAttempt
from apps.schedules.models import RecurringRun
from apps.storage.base import build_artifact_uri
from tests.factories import (
    ArtifactFactory,
    ExperimentFactory,
    NamespaceFactory,
    PipelineFactory,
    PipelineVersionFactory,
    RecurringRunFactory,
    RunFactory,
    TaskFactory,
    UserFactory,
)

NS_A, NS_B = "team-a", "team-b"
#: The roles in increasing power, as the README states them.
RANK = {"viewer": 1, "editor": 2, "owner": 3}


@dataclass
class World:
    """Namespace A with one of each object (and spares the delete routes consume), and the callers."""

    a: Namespace
    b: Namespace
    users: dict[str, Any]
    tokens: dict[str, str]
    objects: dict[str, Any]
    ui: dict[str, Any] = field(default_factory=dict)  # the matrix's session clients, by role
    api: dict[str, Any] = field(default_factory=dict)  # and its API clients
    #: snapshot() of the world as built: every matrix cell runs in a transaction that is
    #: rolled back, so it is also the state before each cell (the matrix checks it is).
    baseline: dict[str, list[tuple[Any, ...]]] | None = None

    def __post_init__(self) -> None:
        self._keys = {name: (type(obj), obj.pk) for name, obj in self.objects.items()}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["objects"][name]
        except KeyError:
            raise AttributeError(name) from None

    def refresh(self) -> None:
        """Re-read the objects (a service that deleted one leaves its instance without a pk)."""
        self.objects = {name: model.objects.get(pk=pk) for name, (model, pk) in self._keys.items()}


def build_world() -> World:
    """Namespace A's objects and the people; deactivates the former admin last."""
    a, b = NamespaceFactory(name=NS_A), NamespaceFactory(name=NS_B)
    users = {
        "viewer": UserFactory(username="viewer", namespace=a, namespace__role=Membership.Role.VIEWER),
        "editor": UserFactory(username="editor", namespace=a, namespace__role=Membership.Role.EDITOR),
        "owner": UserFactory(username="owner", namespace=a, namespace__role=Membership.Role.OWNER),
        "outsider": UserFactory(username="outsider", namespace=b, namespace__role=Membership.Role.OWNER),
        # An admin is a member of nothing: staff see and may do everything without a role.
        "admin": UserFactory(username="admin", is_staff=True, is_superuser=True, namespace=b),
        # The strongest account there was, switched off: it must get nothing at all.
        "deactivated": UserFactory(
            username="former-admin",
            is_staff=True,
            is_superuser=True,
            namespace=a,
            namespace__role=Membership.Role.OWNER,
        ),
    }
    Membership.objects.filter(user=users["admin"]).delete()
    newcomer = UserFactory(username="newcomer", namespace=b)  # whom the members page adds to A
    tokens = {role: api_token_create(actor=user, user=user, name="matrix")[1] for role, user in users.items()}

    pipeline = PipelineFactory(namespace=a, name="matrix-pipeline")
    version = PipelineVersionFactory(pipeline=pipeline, name="v1")
    unused_version = PipelineVersionFactory(pipeline=pipeline, name="v2")  # the delete routes' version
    spare_pipeline = PipelineFactory(namespace=a, name="spare-pipeline")  # the delete routes' pipeline
    PipelineVersionFactory(pipeline=spare_pipeline, name="spare-v1")
    experiment = ExperimentFactory(namespace=a, display_name="matrix-experiment")
    empty_experiment = ExperimentFactory(namespace=a, display_name="empty-experiment")
    run = RunFactory(namespace=a, experiment=experiment, pipeline_version=version, state=RuntimeState.FAILED)
    other_run = RunFactory(
        namespace=a, experiment=experiment, pipeline_version=version, state=RuntimeState.SUCCEEDED
    )
    root = TaskFactory(run=run, key="root", name="root", kind=TaskKind.ROOT, state=RuntimeState.FAILED)
    task = TaskFactory(run=run, parent=root, key="root/writer", name="writer", state=RuntimeState.SUCCEEDED)
    TaskFactory(run=run, parent=root, key="root/broken", name="broken", state=RuntimeState.FAILED)
    uri = build_artifact_uri(
        str(settings.CANAL_PIPELINE_ROOT), "hello", str(run.pk), "writer", "out", unique=str(task.pk)
    )
    Path(uri).parent.mkdir(parents=True, exist_ok=True)
    Path(uri).write_bytes(b"matrix artifact bytes\n")
    artifact = ArtifactFactory(producer_task=task, run=run, name="out", uri=uri)
    page = Path(uri).parent / "page.html"
    page.write_text("<p>matrix page</p>")
    html_artifact = ArtifactFactory(
        producer_task=task, run=run, name="page", uri=str(page), schema_title="system.HTML"
    )
    log = Path(settings.CANAL_LOG_DIR) / str(run.pk) / str(task.pk) / "attempt-1.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"matrix log line\n")
    ref = {"id": str(artifact.pk), "name": "out", "uri": uri, "schema_title": "system.Artifact"}
    Task.objects.filter(pk=task.pk).update(
        outputs={"parameters": {}, "artifacts": {"out": [ref]}}, log_path=str(log), attempt=1
    )
    attempt = TaskAttempt.objects.create(task=task, number=1, state=RuntimeState.SUCCEEDED, log_path=str(log))
    recurring_run = RecurringRunFactory(
        namespace=a,
        experiment=experiment,
        pipeline_version=version,
        mode=RecurringRunMode.DISABLE,
        status=RecurringRunStatus.DISABLED,
    )
    objects = {
        "pipeline": pipeline,
        "version": version,
        "unused_version": unused_version,
        "spare_pipeline": spare_pipeline,
        "experiment": experiment,
        "empty_experiment": empty_experiment,
        "run": run,
        "other_run": other_run,
        "task": task,
        "attempt": attempt,
        "artifact": artifact,
        "html_artifact": html_artifact,
        "recurring_run": recurring_run,
        "membership": Membership.objects.get(namespace=a, user=users["viewer"]),
        "group": Group.objects.create(name="matrix-group"),
        "token_row": ApiToken.objects.filter(user=users["viewer"]).first(),
        "newcomer": newcomer,
        "newcomer_token": api_token_create(actor=newcomer, user=newcomer, name="theirs")[0],
        "heartbeat": _heartbeat(),
        **_login_records(),
    }
    return World(a=a, b=b, users=users, tokens=tokens, objects=objects)


def _heartbeat() -> Any:
    """A worker's liveness row (the admin lists them)."""
    now = timezone.now()
    instance = uuid.uuid4()
    process_heartbeat_record(instance=instance, kind="worker", hostname="matrix", pid=1, started_at=now)
    return ProcessHeartbeat.objects.get(pk=instance)


def _login_records() -> dict[str, Any]:
    """One row of each of django-axes' login records (the admin lists them)."""
    common = {"user_agent": "matrix", "ip_address": "192.0.2.1", "username": "viewer", "path_info": "/login/"}
    return {
        "access_attempt": AccessAttempt.objects.create(failures_since_start=1, **common),
        "access_log": AccessLog.objects.create(**common),
        "access_failure_log": AccessFailureLog.objects.create(**common),
    }


def deactivate(user: Any) -> None:
    """Switch an account off (what an admin does instead of deleting it)."""
    user.is_active = False
    user.save(update_fields=["is_active"])


#: Per model, the fields a write would touch; the pk is always included.
SNAPSHOT: list[tuple[Any, tuple[str, ...]]] = [
    (Namespace, ("name", "description")),
    (Membership, ("namespace_id", "user_id", "role")),
    (get_user_model(), ("username", "is_active", "is_staff", "is_superuser")),
    (Group, ("name",)),
    (ApiToken, ("user_id", "revoked")),
    (Pipeline, ("namespace_id", "name", "display_name")),
    (PipelineVersion, ("pipeline_id", "name", "display_name")),
    (Experiment, ("namespace_id", "display_name", "storage_state")),
    (Run, ("namespace_id", "display_name", "state", "storage_state")),
    (Task, ("run_id", "key", "state")),
    (TaskAttempt, ("task_id", "state")),
    (Artifact, ("run_id", "uri")),
    (RecurringRun, ("namespace_id", "display_name", "mode", "status", "next_fire_time")),
    (ProcessHeartbeat, ("kind", "hostname")),
    (AccessAttempt, ("username", "failures_since_start")),
    (AccessLog, ("username",)),
    (AccessFailureLog, ("username",)),
]


_SNAPSHOT_SQL: list[tuple[str, str, tuple[Any, ...]]] = []


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """What the matrix compares before and after a cell: every row's id and the fields
    writes touch, for every model. The SQL is compiled by the ORM once and then run
    directly: with two snapshots per cell, the ORM's compiling was most of the runtime."""
    if not _SNAPSHOT_SQL:
        for model, fields in SNAPSHOT:
            sql, params = model.objects.order_by("pk").values_list("pk", *fields).query.sql_with_params()
            _SNAPSHOT_SQL.append((model.__name__, sql, tuple(params)))
    rows = {}
    with connection.cursor() as cursor:
        for name, sql, params in _SNAPSHOT_SQL:
            cursor.execute(sql, params)
            rows[name] = cursor.fetchall()
    return rows
