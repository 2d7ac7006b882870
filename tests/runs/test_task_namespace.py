"""Every task row carries its run's namespace (Task.namespace, migration runs.0010):
the executions list finds a namespace's steps by it. Both writers set it, the KFP
planner and the Argo status sync, and the migration fills it for rows written before."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.db.models import F

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.models import Namespace
from apps.core.services import namespace_ensure
from apps.pipelines.services import pipeline_create_from_upload
from apps.runs.models import Run, Task
from apps.runs.services import argo_interpret, run_advance, run_create
from tests.engine.compiled import fan_out_ir
from tests.factories import NamespaceFactory, RunFactory, TaskFactory
from tests.paths import ARGO_EXAMPLES

pytestmark = pytest.mark.django_db


def _mismatched() -> int:
    return Task.objects.exclude(namespace_id=F("run__namespace_id")).count()


def test_the_planner_writes_each_task_with_its_runs_namespace() -> None:
    namespace = NamespaceFactory(name="team-plan")
    run = run_create(
        namespace=namespace, actor=OPERATOR, display_name="fan", pipeline_spec=fan_out_ir(),
        parameters={"numbers": [1, 2, 3]},
    )  # fmt: skip
    run_advance(run_id=run.pk)
    tasks = Task.objects.filter(run=run)
    assert tasks.count() > 3  # the root, the loop, its iterations and their steps
    assert set(tasks.values_list("namespace_id", flat=True)) == {namespace.pk}
    assert _mismatched() == 0


def test_the_argo_sync_writes_each_task_with_its_runs_namespace() -> None:
    namespace = namespace_ensure(actor=OPERATOR)
    version = pipeline_create_from_upload(
        actor=OPERATOR, namespace=namespace, filename="diamond.yaml", name="diamond",
        data=(ARGO_EXAMPLES / "dag-diamond.yaml").read_bytes(),
    )  # fmt: skip
    run = run_create(actor=OPERATOR, namespace=namespace, display_name="argo", pipeline_version=version)
    run_advance(run_id=run.pk)
    argo_interpret(run_id=run.pk)
    assert Run.objects.get(pk=run.pk).state == RuntimeState.SUCCEEDED
    tasks = Task.objects.filter(run=run)
    assert tasks.count() >= 4  # A, B, C, D
    assert set(tasks.values_list("namespace_id", flat=True)) == {namespace.pk}
    assert _mismatched() == 0


def test_the_migration_copies_each_runs_namespace_to_its_tasks() -> None:
    first, second = NamespaceFactory(name="team-a"), NamespaceFactory(name="team-b")
    runs = [RunFactory(namespace=first), RunFactory(namespace=second), RunFactory(namespace=first)]
    for run in runs:
        TaskFactory.create_batch(3, run=run)
    # Rows as the migration finds them: none with its run's namespace.
    stray = Namespace.objects.create(name="stray")
    Task.objects.update(namespace=stray)
    assert _mismatched() == 9
    migration = importlib.import_module("apps.runs.migrations.0010_task_namespace")
    migration.fill_task_namespaces(django_apps, connection)
    assert _mismatched() == 0
    assert Task.objects.filter(namespace=first).count() == 6
    assert Task.objects.filter(namespace=second).count() == 3
