"""Pipelines and their versions."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse

from apps.core.choices import PipelineFormat


class Pipeline(models.Model):
    """A named pipeline in a namespace; the versions hold the actual definitions."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    namespace = models.ForeignKey("core.Namespace", on_delete=models.PROTECT, related_name="pipelines")
    name = models.CharField(max_length=255)
    display_name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name"], name="uniq_pipeline_name_per_namespace")
        ]

    def __str__(self) -> str:
        return self.display_name or self.name

    def get_absolute_url(self) -> str:
        return reverse("pipelines:detail", kwargs={"pipeline_id": self.pk})


class PipelineVersion(models.Model):
    """One uploaded definition of a pipeline: the source text exactly as uploaded,
    the detected format, the parsed spec the engine runs, and a content hash."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    name = models.CharField(max_length=255)
    display_name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    source = models.TextField(help_text="The uploaded YAML text (the IR or Workflow document).")
    source_filename = models.CharField(max_length=255, blank=True)
    format = models.CharField(max_length=16, choices=PipelineFormat.choices)
    pipeline_spec = models.JSONField(help_text="The parsed PipelineSpec (KFP IR) or Workflow.")
    platform_spec = models.JSONField(null=True, blank=True, help_text="The optional second IR document.")
    content_hash = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the source text.")
    code_source_url = models.URLField(blank=True, max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "name"], name="uniq_version_name_per_pipeline")
        ]

    def __str__(self) -> str:
        return f"{self.pipeline} / {self.display_name or self.name}"
