"""Recurring runs (KFP RecurringRun / ScheduledWorkflow)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.core.choices import RecurringRunMode, RecurringRunStatus, TriggerType


class RecurringRun(models.Model):
    """A schedule that starts runs of a pipeline on a cron expression or a fixed
    interval, with an explicit timezone, optional start/end, a concurrency cap and
    a catch-up policy. It runs a pinned version, the pipeline's latest version, or
    an inline spec."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    namespace = models.ForeignKey("core.Namespace", on_delete=models.PROTECT, related_name="recurring_runs")
    experiment = models.ForeignKey(
        "experiments.Experiment", on_delete=models.PROTECT, related_name="recurring_runs"
    )
    display_name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    pipeline = models.ForeignKey(
        "pipelines.Pipeline",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="recurring_runs",
        help_text="With no pinned version: run this pipeline's latest version.",
    )
    pipeline_version = models.ForeignKey(
        "pipelines.PipelineVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="recurring_runs",
        help_text="The pinned version, if any.",
    )
    pipeline_spec = models.JSONField(
        null=True, blank=True, help_text="Inline spec, when not from a pipeline."
    )
    platform_spec = models.JSONField(null=True, blank=True)
    runtime_parameters = models.JSONField(default=dict, blank=True)
    pipeline_root = models.CharField(max_length=1024, blank=True)
    service_account = models.CharField(max_length=255, blank=True)

    trigger_type = models.CharField(max_length=16, choices=TriggerType.choices)
    cron = models.CharField(max_length=255, blank=True, help_text="5-field, or KFP's 6-field with seconds.")
    interval_second = models.BigIntegerField(null=True, blank=True)
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")

    max_concurrency = models.PositiveIntegerField(default=1)
    no_catchup = models.BooleanField(default=False)
    mode = models.CharField(max_length=16, choices=RecurringRunMode.choices, default=RecurringRunMode.ENABLE)
    status = models.CharField(
        max_length=32, choices=RecurringRunStatus.choices, default=RecurringRunStatus.ENABLED, db_index=True
    )
    error = models.TextField(blank=True)

    last_fire_time = models.DateTimeField(null=True, blank=True)
    next_fire_time = models.DateTimeField(null=True, blank=True, db_index=True)
    fired_count = models.PositiveIntegerField(
        default=0, help_text="Runs this schedule has started; the last one's [[Index]]."
    )
    enabled_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was last enabled; no backfill before this."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.display_name
