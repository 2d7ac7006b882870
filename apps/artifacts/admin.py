from django.contrib import admin

from apps.artifacts.models import Artifact


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
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
