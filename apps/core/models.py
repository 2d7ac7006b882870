"""Accounts-side models: namespaces (teams) and API tokens."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models


class Namespace(models.Model):
    """A team or workspace. Pipelines, experiments and runs belong to one; users see
    the namespaces they are members of (staff see all)."""

    DEFAULT = "default"

    name = models.SlugField(max_length=63, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="namespaces", blank=True
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's membership of a namespace, with a role."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        EDITOR = "editor", "Editor"
        OWNER = "owner", "Owner"

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.EDITOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["namespace", "user"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.namespace} ({self.role})"


class ApiToken(models.Model):
    """A bearer token for the REST API and automation. Only its SHA-256 digest is
    stored; the plaintext is shown once, when created."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=12, editable=False, help_text="First characters, to tell tokens apart."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def digest_of(plaintext: str) -> str:
        return hashlib.sha256(plaintext.encode()).hexdigest()


class ProcessHeartbeat(models.Model):
    """The liveness of one running Canal background process: a Celery worker or the
    scheduler. Each process owns one row (its id is chosen when the process starts)
    and renews ``last_seen`` every CANAL_PROCESS_HEARTBEAT_SECONDS; ``/healthz`` reads
    the newest per kind. A row whose process died simply stops being renewed."""

    class Kind(models.TextChoices):
        WORKER = "worker", "Worker"
        SCHEDULER = "scheduler", "Scheduler"

    id = models.UUIDField(primary_key=True, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["kind", "-last_seen"]
        indexes = [models.Index(fields=["kind", "last_seen"], name="heartbeat_kind_seen")]

    def __str__(self) -> str:
        return f"{self.kind} {self.hostname}:{self.pid}"
