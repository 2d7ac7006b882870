"""Read-side queries for runs, tasks, attempts and logs, scoped to the user's namespaces."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from apps.core.exceptions import NotFound
from apps.core.models import Namespace
from apps.core.selectors import namespace_list_for_user
from apps.runs.models import Run, Task, TaskAttempt
from apps.storage import LogChunk, LogStore, UnsafePathError


def _uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"{what} {value} not found") from None


def run_list(*, user: Any, namespace: Namespace | None = None) -> QuerySet[Run]:
    """Runs the user may see, with what list pages show joined in (no N+1)."""
    qs = Run.objects.filter(namespace__in=namespace_list_for_user(user=user))
    if namespace is not None:
        qs = qs.filter(namespace=namespace)
    return qs.select_related(
        "namespace", "experiment", "pipeline_version", "pipeline_version__pipeline", "recurring_run"
    ).defer("pipeline_spec", "platform_spec")


def run_get(*, user: Any, run_id: Any, with_spec: bool = True) -> Run:
    """One run the user may see, or NotFound."""
    qs = Run.objects.filter(namespace__in=namespace_list_for_user(user=user)).select_related(
        "namespace", "experiment", "pipeline_version", "pipeline_version__pipeline", "recurring_run"
    )
    if not with_spec:
        qs = qs.defer("pipeline_spec", "platform_spec")
    try:
        return qs.get(pk=_uuid(run_id, "run"))
    except Run.DoesNotExist:
        raise NotFound(f"run {run_id} not found") from None


def run_get_unscoped(*, run_id: Any) -> Run:
    """A run by id, for trusted callers (workers, management commands)."""
    try:
        return Run.objects.select_related("namespace", "experiment").get(pk=_uuid(run_id, "run"))
    except Run.DoesNotExist:
        raise NotFound(f"run {run_id} not found") from None


def task_list(*, run: Run) -> QuerySet[Task]:
    """A run's tasks in creation order, without the stored launch."""
    return Task.objects.filter(run=run).defer("launch").order_by("created_at", "key")


def task_get(*, run: Run, task_id: Any) -> Task:
    """One task of a run (by id or by key), or NotFound."""
    qs = Task.objects.filter(run=run)
    try:
        return qs.get(pk=_uuid(task_id, "task"))
    except (NotFound, Task.DoesNotExist):
        task = qs.filter(key=str(task_id)).first()
        if task is None:
            raise NotFound(f"task {task_id} not found in run {run.pk}") from None
        return task


def task_attempts(*, task: Task) -> QuerySet[TaskAttempt]:
    """A task's attempts, first to last."""
    return task.attempts.order_by("number")


def task_log_read(
    *, task: Task, attempt: int | None = None, offset: int = 0, limit: int = 256 * 1024
) -> LogChunk:
    """A slice of a task attempt's log (latest attempt by default), for tailing."""
    number = attempt or task.attempt
    row = task.attempts.filter(number=number).first()
    path = row.log_path if row else task.log_path
    if not path:
        raise NotFound("this task has no log (it did not run a process)")
    store = LogStore(settings.CANAL_LOG_DIR)
    try:
        return store.read(path, offset=max(0, offset), limit=limit)
    except FileNotFoundError:
        raise NotFound("the log file is gone") from None
    except UnsafePathError:
        raise NotFound("log not found") from None
