"""Runs, the tasks they execute, and each task's attempts."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.core.choices import PipelineFormat, RunExecutor, RuntimeState, StorageState, TaskKind


class Run(models.Model):
    """One execution of a pipeline (KFP Run). The spec is snapshotted at creation,
    so a run keeps its definition even if its pipeline version changes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    namespace = models.ForeignKey("core.Namespace", on_delete=models.PROTECT, related_name="runs")
    experiment = models.ForeignKey("experiments.Experiment", on_delete=models.PROTECT, related_name="runs")
    display_name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    pipeline_version = models.ForeignKey(
        "pipelines.PipelineVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="runs",
        help_text="Empty when the run was created from an inline spec.",
    )
    pipeline_spec = models.JSONField(
        help_text="What this run executes (snapshot): KFP IR, or an Argo Workflow (spec_format)."
    )
    spec_format = models.CharField(
        max_length=16, choices=PipelineFormat.choices, default=PipelineFormat.KFP_IR
    )
    executor = models.CharField(
        max_length=16,
        choices=RunExecutor.choices,
        default=RunExecutor.LOCAL,
        help_text="The run executor that runs it, chosen at creation.",
    )
    executor_state = models.JSONField(
        default=dict,
        blank=True,
        help_text="The executor's own record: the Argo status an interpreter resumes from, "
        "the submitted Workflow's name, the last sync error.",
    )
    platform_spec = models.JSONField(null=True, blank=True)
    pipeline_name = models.CharField(max_length=255, blank=True, db_index=True)
    runtime_parameters = models.JSONField(default=dict, blank=True)
    pipeline_root = models.CharField(max_length=1024, blank=True)
    enable_caching = models.BooleanField(
        null=True, blank=True, help_text="Override the spec's per-task caching (empty: as the spec says)."
    )
    service_account = models.CharField(max_length=255, blank=True)
    state = models.CharField(
        max_length=32, choices=RuntimeState.choices, default=RuntimeState.PENDING, db_index=True
    )
    state_history = models.JSONField(
        default=list, blank=True, help_text="[{update_time, state, error}] as in KFP."
    )
    error = models.TextField(blank=True)
    storage_state = models.CharField(
        max_length=16, choices=StorageState.choices, default=StorageState.AVAILABLE, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    scheduled_at = models.DateTimeField(null=True, blank=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    recurring_run = models.ForeignKey(
        "schedules.RecurringRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    needs_advance = models.BooleanField(
        default=False, help_text="A step finished since the engine last planned this run."
    )
    revision = models.BigIntegerField(
        default=0, help_text="Bumped by every change to the run's task records the engine reads."
    )
    records_epoch = models.IntegerField(
        default=0, help_text="Bumped when task records are deleted (run retry): caches start over."
    )
    cloned_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="clones"
    )
    rerun_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
        help_text="A step re-run: the run whose task (rerun_of_task_key) this run re-runs.",
    )
    rerun_of_task_key = models.CharField(
        max_length=512, blank=True, help_text="The origin run's task this run re-runs (its key)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        # The list queries' shapes (issue 12): a namespace's (or an experiment's) runs,
        # archived or not, maybe of one state, in (sort key, id) order read as one
        # index range from the keyset cursor (apps.api.listing, the runs table).
        # The id is the keyset tie-break; InnoDB appends it anyway, SQLite does not.
        indexes = [
            # Ascending with the id: read backwards it is (created_at DESC, id DESC), the
            # runs table's default order; the DESC index it replaces left the id out, so
            # MariaDB sorted, and chose to drive the join from the experiments instead.
            models.Index(fields=["namespace", "storage_state", "created_at", "id"], name="run_ns_st_created"),
            models.Index(fields=["namespace", "created_at", "id"], name="run_ns_created"),
            models.Index(fields=["namespace", "display_name", "id"], name="run_ns_name"),
            models.Index(fields=["namespace", "finished_at", "id"], name="run_ns_finished"),
            models.Index(fields=["namespace", "state", "created_at", "id"], name="run_ns_state_created"),
            models.Index(fields=["namespace", "storage_state", "display_name", "id"], name="run_ns_st_name"),
            models.Index(
                fields=["namespace", "storage_state", "state", "created_at", "id"],
                name="run_ns_st_state_created",
            ),
            models.Index(fields=["experiment", "created_at", "id"], name="run_exp_created"),
            # An experiment's page: its namespace leads (run_list pins it), so the index
            # answers the namespace check, the count and the page without reading rows.
            models.Index(
                fields=["namespace", "experiment", "storage_state", "created_at", "id"],
                name="run_ns_exp_st_created",
            ),
            # The executions list's pipeline filter: a namespace's distinct pipeline names.
            models.Index(fields=["namespace", "pipeline_name"], name="run_ns_pipeline"),
        ]
        constraints = [
            # A schedule fires each instant once, however many schedulers run.
            models.UniqueConstraint(
                fields=["recurring_run", "scheduled_at"], name="uniq_run_per_schedule_instant"
            )
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def is_terminal(self) -> bool:
        return self.state in RuntimeState.terminal()


class Task(models.Model):
    """One executed node of a run's DAG: the root, a sub-DAG, a ParallelFor, one
    loop iteration, a container step or an importer. ``key`` is the node's path
    in the executed tree (see apps.engine.keys) and is unique within the run."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tasks")
    # The run's namespace, copied (a run never changes namespace): the executions list
    # filters and sorts a namespace's steps through its own indexes. Through the run it
    # joined every task of the namespace and sorted them: 16 s a page at 1M tasks. No
    # constraint of its own: the run's foreign key already ties the row to it.
    namespace = models.ForeignKey(
        "core.Namespace",
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
        editable=False,
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    key = models.CharField(max_length=512)
    node = models.CharField(
        max_length=512,
        blank=True,
        default="",
        help_text="The static graph node it runs: the key without iteration indexes "
        "(apps.engine.keys.node_key). The run page counts a loop's tasks by it.",
    )
    name = models.CharField(max_length=255, help_text="The task's name in its DAG.")
    display_name = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=16, choices=TaskKind.choices)
    component_name = models.CharField(max_length=255, blank=True)
    executor_label = models.CharField(max_length=255, blank=True)
    iteration_index = models.IntegerField(null=True, blank=True)
    iteration_count = models.IntegerField(
        null=True, blank=True, help_text="ParallelFor: number of iterations."
    )
    state = models.CharField(
        max_length=32, choices=RuntimeState.choices, default=RuntimeState.PENDING, db_index=True
    )
    state_history = models.JSONField(default=list, blank=True)
    launch = models.JSONField(
        null=True,
        blank=True,
        help_text="Steps: the resolved step the engine planned (apps.engine.serialize).",
    )
    status_message = models.TextField(blank=True, help_text="Why it was skipped, or what failed.")
    attempt = models.PositiveIntegerField(default=0, help_text="Attempts started so far.")
    inputs = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    cache_fingerprint = models.CharField(max_length=64, blank=True, db_index=True)
    cached_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="cache_hits"
    )
    cache_status = models.CharField(max_length=255, blank=True, help_text="Cache hit, or why not.")
    image = models.CharField(max_length=1024, blank=True)
    command = models.JSONField(default=list, blank=True, help_text="The resolved argv of the last attempt.")
    error = models.TextField(blank=True)
    log_path = models.CharField(max_length=1024, blank=True, help_text="Log of the latest attempt.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Retry backoff: not before this.")
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was last handed to a worker (queue or continuation)."
    )
    lease_owner = models.CharField(max_length=255, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    revision = models.BigIntegerField(default=0, help_text="The run revision that last changed this row.")

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_task_key_per_run")]
        indexes = [
            models.Index(fields=["run", "state"]),
            models.Index(fields=["run", "revision"]),
            # The run page's task table in planned order, paged.
            models.Index(fields=["run", "created_at", "id"], name="task_run_created"),
            # The run page's graph: per node, kind and state counts (covering).
            models.Index(fields=["run", "node", "kind", "state", "cached_from"], name="task_run_node_state"),
            # The executions list: newest first (the kind last, so that the index alone
            # tells a step from a DAG: a deep page read 10k rows for it, 0.5 s), filtered
            # by state, sorted by name; its component filter's choices.
            models.Index(fields=["namespace", "created_at", "id", "kind"], name="task_ns_created"),
            models.Index(
                fields=["namespace", "state", "created_at", "id", "kind"], name="task_ns_state_created"
            ),
            models.Index(fields=["namespace", "name", "id", "kind"], name="task_ns_name"),
            models.Index(fields=["namespace", "kind", "component_name"], name="task_ns_kind_component"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.key}"

    @property
    def is_terminal(self) -> bool:
        return self.state in RuntimeState.terminal()


class TaskAttempt(models.Model):
    """One attempt at running a task; retries make more. Each keeps its own log."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=32, choices=RuntimeState.choices, default=RuntimeState.RUNNING)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid of the worker.")
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    log_path = models.CharField(max_length=1024, blank=True)
    command = models.JSONField(default=list, blank=True)
    sandbox = models.TextField(
        blank=True, help_text="Empty when the attempt ran in the step sandbox; else why it did not."
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task", "number"]
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="uniq_attempt_number_per_task")
        ]

    def __str__(self) -> str:
        return f"{self.task} attempt {self.number}"
