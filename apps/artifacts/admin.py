from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.artifacts.models import Artifact
from apps.core.admin import ModelAdmin


@admin.register(Artifact)
class ArtifactAdmin(ModelAdmin):
    """Read-only: artifact records are written by the engine and go with their run."""

    list_display = ["name", "schema_title", "run", "producer_task", "uri", "created_at"]
    list_filter = ["schema_title", "created_at"]
    search_fields = ["name", "uri", "run__id", "run__display_name"]
    readonly_fields = [
        "run",
        "producer_task",
        "name",
        "schema_title",
        "schema_version",
        "uri",
        "metadata",
        "created_at",
    ]
    list_select_related = ["run", "producer_task"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
