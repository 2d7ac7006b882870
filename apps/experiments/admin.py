from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin import ServiceWriteAdmin
from apps.core.exceptions import ServiceError
from apps.experiments import services
from apps.experiments.models import Experiment


@admin.register(Experiment)
class ExperimentAdmin(ServiceWriteAdmin):
    """Read-only, with archive, restore and delete through the experiment services
    (archiving also archives its runs and disables its recurring runs)."""

    list_display = ["qualified_name", "namespace", "storage_state", "created_at", "last_run_created_at"]
    list_display_links = ["qualified_name"]
    list_filter = ["storage_state", "namespace"]
    list_select_related = ["namespace"]
    search_fields = ["display_name", "description", "id"]
    readonly_fields = ["id", "created_at", "last_run_created_at"]
    actions = ["archive_selected", "unarchive_selected"]

    @admin.display(description="experiment", ordering="display_name")
    def qualified_name(self, obj: Experiment) -> str:
        return str(obj)  # "namespace / name": every namespace has a "Default"

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        services.experiment_delete(actor=request.user, experiment=obj)

    def _each(self, request: HttpRequest, queryset: QuerySet[Experiment], service: Any, verb: str) -> None:
        done, refused = 0, []
        for experiment in queryset.select_related("namespace"):
            try:
                service(actor=request.user, experiment=experiment)
            except ServiceError as exc:
                refused.append(f"{experiment}: {exc.message}")
            else:
                done += 1
        self.message_user(request, f"{verb} {done} experiment(s).", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.ERROR)

    @admin.action(description="Archive selected experiments (and their runs)")
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, services.experiment_archive, "Archived")

    @admin.action(description="Restore selected experiments")
    def unarchive_selected(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, services.experiment_unarchive, "Restored")
