from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from apps.core.admin import (
    ADMIN_MEDIA_CSS,
    ModelAdmin,
    NamespacedRelatedFilter,
    ServiceWriteAdmin,
    TabularInline,
    pretty_json,
)
from apps.core.exceptions import ServiceError
from apps.runs import services
from apps.runs.models import Run, Task, TaskAttempt


class ReadOnlyAdmin(ModelAdmin):
    """Execution records are written by the engine only; operators read them here
    and act on runs through the UI/API (terminate, retry), which keep them consistent."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class TaskInline(TabularInline):
    model = Task
    fields = ("key", "kind", "state", "attempt", "started_at", "finished_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False
    max_num = 0


@admin.register(Run)
class RunAdmin(ServiceWriteAdmin):
    """Read-only records, with terminate, archive, restore and delete as actions that call
    the same services as the UI and the API, acting as the signed-in operator: the roles
    and the services' rules hold (an active run is not deleted; a finished one is not
    terminated), and each refusal is reported. Deleting asks for confirmation, as
    Django's admin does; the actions need the operator's "change run" permission."""

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
    list_filter = [
        "state",
        ("experiment", NamespacedRelatedFilter),
        "storage_state",
        "namespace",
        "created_at",
    ]
    search_fields = ["display_name", "id", "pipeline_name"]
    list_select_related = ["experiment__namespace", "pipeline_version__pipeline", "namespace"]
    date_hierarchy = "created_at"
    inlines = [TaskInline]
    actions = ["terminate_selected", "archive_selected", "unarchive_selected"]
    fields = (
        "id",
        "display_name",
        "description",
        "namespace",
        "experiment",
        "pipeline_version",
        "pipeline_name",
        "spec_format",
        "executor",
        "state",
        "error",
        "storage_state",
        "created_at",
        "scheduled_at",
        "started_at",
        "finished_at",
        "recurring_run",
        "cloned_from",
        "created_by",
        "pipeline_root",
        "enable_caching",
        "service_account",
        "runtime_parameters_pretty",
        "pipeline_spec_pretty",
        "platform_spec_pretty",
        "state_history_pretty",
        "executor_state_pretty",
        "needs_advance",
        "revision",
        "records_epoch",
    )
    readonly_fields = fields

    class Media:
        css = ADMIN_MEDIA_CSS

    # --- JSON documents, pretty-printed and escaped ---------------------------------------

    @admin.display(description="runtime parameters")
    def runtime_parameters_pretty(self, obj: Run) -> str:
        return pretty_json(obj.runtime_parameters)

    @admin.display(description="pipeline spec")
    def pipeline_spec_pretty(self, obj: Run) -> str:
        return pretty_json(obj.pipeline_spec)

    @admin.display(description="platform spec")
    def platform_spec_pretty(self, obj: Run) -> str:
        return pretty_json(obj.platform_spec)

    @admin.display(description="state history")
    def state_history_pretty(self, obj: Run) -> str:
        return pretty_json(obj.state_history)

    @admin.display(description="executor state")
    def executor_state_pretty(self, obj: Run) -> str:
        return pretty_json(obj.executor_state)

    # --- actions, through the services ------------------------------------------------------

    def has_act_permission(self, request: HttpRequest) -> bool:
        """Terminate, archive and restore: the model's "change" permission (this admin
        edits no field, so Django's own change permission stays off)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """An action this operator is not offered (a stale page, a hand-made request) is
        refused with a message; Django would silently show the list again."""
        action = request.POST.get("action", "") if request.method == "POST" else ""
        if action and action not in self.get_actions(request):
            self.message_user(
                request,
                f"You may not use the action {action!r} on runs: your account lacks the permission.",
                messages.ERROR,
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().changelist_view(request, extra_context)

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        services.run_delete(actor=request.user, run=obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """The confirmation page lists the run's tasks, attempts and artifact records, which
        run_delete removes with it: they are part of the run, and their admins (read-only)
        must not make Django refuse the deletion for want of a permission on them."""
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def _each(self, request: HttpRequest, queryset: QuerySet[Run], service: Any, verb: str) -> None:
        done, refused = 0, []
        for run in queryset.select_related("namespace"):
            try:
                service(actor=request.user, run=run)
            except ServiceError as exc:
                refused.append(f"{run.display_name}: {exc.message}")
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} run{'s' if done != 1 else ''}.", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.ERROR)

    @admin.action(description="Terminate selected runs", permissions=["act"])
    def terminate_selected(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._each(request, queryset, services.run_terminate, "Terminated")

    @admin.action(description="Archive selected runs", permissions=["act"])
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._each(request, queryset, services.run_archive, "Archived")

    @admin.action(description="Restore selected runs", permissions=["act"])
    def unarchive_selected(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        self._each(request, queryset, services.run_unarchive, "Restored")


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
