"""Experiments group runs."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.core.choices import RunExecutor, StorageState


class Experiment(models.Model):
    """A named group of runs and recurring runs in a namespace (KFP Experiment)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    namespace = models.ForeignKey("core.Namespace", on_delete=models.PROTECT, related_name="experiments")
    display_name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    storage_state = models.CharField(
        max_length=16, choices=StorageState.choices, default=StorageState.AVAILABLE, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_run_created_at = models.DateTimeField(null=True, blank=True)
    execution_backend = models.CharField(
        max_length=16,
        choices=RunExecutor.choices,
        blank=True,
        help_text="Where this experiment's runs execute (empty: CANAL_EXECUTION_BACKEND).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "display_name"], name="uniq_experiment_name_per_namespace"
            )
        ]

    def __str__(self) -> str:
        # Namespace-qualified: every namespace has an experiment named "Default".
        return f"{self.namespace.name} / {self.display_name}"
