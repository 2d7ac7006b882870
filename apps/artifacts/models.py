"""Artifacts produced (or imported) by tasks."""

from __future__ import annotations

from django.db import models


class Artifact(models.Model):
    """An output artifact of a task: its type (schemaTitle), where it is stored
    (URI), and its metadata (Metrics and ClassificationMetrics keep their values
    there). The integer id is what the API exposes as ``artifact_ids``, as in KFP."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="artifacts")
    producer_task = models.ForeignKey(
        "runs.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="produced_artifacts"
    )
    name = models.CharField(max_length=255, help_text="The output key it was produced under.")
    display_name = models.CharField(max_length=255, blank=True)
    schema_title = models.CharField(max_length=128, db_index=True)
    schema_version = models.CharField(max_length=32, blank=True, default="0.0.1")
    uri = models.CharField(max_length=2048)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["run", "name"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_title})"
