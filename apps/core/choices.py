"""Enumerations shared across apps.

Names follow KFP's v2beta1 API enums exactly, so the REST API can expose the
stored values unchanged. Each choice set carries one colour map that the
templates share (NetBox style).
"""

from django.db import models


class RuntimeState(models.TextChoices):
    """KFP ``RuntimeState``: the state of a run or a task."""

    RUNTIME_STATE_UNSPECIFIED = "RUNTIME_STATE_UNSPECIFIED", "Unspecified"
    PENDING = "PENDING", "Pending"
    RUNNING = "RUNNING", "Running"
    SUCCEEDED = "SUCCEEDED", "Succeeded"
    SKIPPED = "SKIPPED", "Skipped"
    FAILED = "FAILED", "Failed"
    CANCELING = "CANCELING", "Canceling"
    CANCELED = "CANCELED", "Canceled"
    PAUSED = "PAUSED", "Paused"

    @classmethod
    def terminal(cls) -> frozenset[str]:
        return frozenset({cls.SUCCEEDED, cls.SKIPPED, cls.FAILED, cls.CANCELED})

    @classmethod
    def active(cls) -> frozenset[str]:
        return frozenset({cls.PENDING, cls.RUNNING, cls.CANCELING, cls.PAUSED})


RUNTIME_STATE_COLORS: dict[str, str] = {
    RuntimeState.RUNTIME_STATE_UNSPECIFIED: "grey",
    RuntimeState.PENDING: "grey",
    RuntimeState.RUNNING: "blue",
    RuntimeState.SUCCEEDED: "green",
    RuntimeState.SKIPPED: "lightgrey",
    RuntimeState.FAILED: "red",
    RuntimeState.CANCELING: "orange",
    RuntimeState.CANCELED: "orange",
    RuntimeState.PAUSED: "purple",
}


class StorageState(models.TextChoices):
    """KFP ``StorageState`` of runs and experiments."""

    AVAILABLE = "AVAILABLE", "Available"
    ARCHIVED = "ARCHIVED", "Archived"


class PipelineFormat(models.TextChoices):
    """The format a pipeline version was uploaded in."""

    KFP_IR = "kfp-ir", "KFP v2 IR"
    ARGO = "argo", "Argo Workflow"


class RunExecutor(models.TextChoices):
    """Where a run executes (recorded on the Run; see apps.runs.services.executors)."""

    LOCAL = "local", "Local (sandboxed processes on the workers)"
    ARGO = "argo", "Argo Workflows on Kubernetes"


class RecurringRunMode(models.TextChoices):
    """KFP ``RecurringRun.Mode``: what the user asked for."""

    ENABLE = "ENABLE", "Enable"
    DISABLE = "DISABLE", "Disable"


class RecurringRunStatus(models.TextChoices):
    """KFP ``RecurringRun.Status``: what the schedule is doing."""

    STATUS_UNSPECIFIED = "STATUS_UNSPECIFIED", "Unspecified"
    ENABLED = "ENABLED", "Enabled"
    DISABLED = "DISABLED", "Disabled"


class TriggerType(models.TextChoices):
    """A recurring run fires on a cron expression or a fixed interval."""

    CRON = "CRON", "Cron"
    PERIODIC = "PERIODIC", "Periodic"


class TaskKind(models.TextChoices):
    """What a Task row stands for in the executed DAG."""

    ROOT = "ROOT", "Pipeline (root DAG)"
    DAG = "DAG", "Sub-DAG"
    LOOP = "LOOP", "ParallelFor"
    ITERATION = "ITERATION", "Loop iteration"
    CONTAINER = "CONTAINER", "Container step"
    IMPORTER = "IMPORTER", "Importer"
