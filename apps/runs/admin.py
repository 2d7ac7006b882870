from django.contrib import admin
from django.http import HttpRequest

from apps.runs.models import Run, Task, TaskAttempt


class ReadOnlyAdmin(admin.ModelAdmin):
    """Execution records are written by the engine only; operators read them here
    and act on runs through the UI/API (terminate, retry), which keep them consistent."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class TaskInline(admin.TabularInline):
    model = Task
    fields = ["key", "kind", "state", "attempt", "started_at", "finished_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False
    max_num = 0


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = [
        "display_name",
        "state",
        "experiment",
        "pipeline_version",
        "namespace",
        "created_at",
        "finished_at",
        "storage_state",
    ]
    list_filter = ["state", "experiment", "storage_state", "namespace", "created_at"]
    search_fields = ["display_name", "id", "pipeline_name"]
    list_select_related = ["experiment", "pipeline_version", "namespace"]
    date_hierarchy = "created_at"
    inlines = [TaskInline]


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ["key", "run", "kind", "state", "attempt", "cached_from", "started_at", "finished_at"]
    list_filter = ["state", "kind"]
    search_fields = ["key", "name", "run__id", "run__display_name"]
    list_select_related = ["run"]


@admin.register(TaskAttempt)
class TaskAttemptAdmin(ReadOnlyAdmin):
    list_display = ["task", "number", "state", "exit_code", "worker", "started_at", "finished_at"]
    list_filter = ["state"]
    search_fields = ["task__key", "task__run__id", "worker"]
    list_select_related = ["task"]
