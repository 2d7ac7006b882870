from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin import NamespacedRelatedFilter, ServiceWriteAdmin
from apps.core.exceptions import ServiceError
from apps.schedules import services
from apps.schedules.models import RecurringRun


@admin.register(RecurringRun)
class RecurringRunAdmin(ServiceWriteAdmin):
    """Operators see every schedule, enable/disable them in bulk and delete them, all
    through the services (which check the role and keep the next fire time
    consistent). Nothing is edited here: the UI and API validate schedules."""

    list_display = [
        "display_name",
        "status",
        "trigger_type",
        "cron",
        "interval_second",
        "timezone",
        "max_concurrency",
        "no_catchup",
        "last_fire_time",
        "next_fire_time",
        "experiment",
    ]
    list_filter = ["status", "mode", "trigger_type", "namespace", ("experiment", NamespacedRelatedFilter)]
    search_fields = ["display_name", "id", "cron"]
    list_select_related = ["experiment__namespace"]
    actions = ["enable_selected", "disable_selected"]
    fields = (
        "id",
        "display_name",
        "description",
        "namespace",
        "experiment",
        "pipeline",
        "pipeline_version",
        "runtime_parameters",
        "trigger_type",
        "cron",
        "interval_second",
        "start_time",
        "end_time",
        "timezone",
        "max_concurrency",
        "no_catchup",
        "mode",
        "status",
        "error",
        "last_fire_time",
        "next_fire_time",
        "fired_count",
        "enabled_at",
        "created_at",
        "updated_at",
        "created_by",
    )
    readonly_fields = fields

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        services.recurring_run_delete(actor=request.user, recurring_run=obj)

    @admin.action(description="Enable selected recurring runs (no backfill)")
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[RecurringRun]) -> None:
        done, failed = 0, []
        for rr in queryset:
            try:
                services.recurring_run_enable(actor=request.user, recurring_run=rr)
            except ServiceError as exc:
                failed.append(f"{rr.display_name}: {exc.message}")
            else:
                done += 1
        self.message_user(request, f"Enabled {done} recurring run(s).", messages.SUCCESS)
        for failure in failed:
            self.message_user(request, failure, messages.ERROR)

    @admin.action(description="Disable selected recurring runs")
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[RecurringRun]) -> None:
        for rr in queryset:
            services.recurring_run_disable(actor=request.user, recurring_run=rr)
        self.message_user(request, f"Disabled {queryset.count()} recurring run(s).", messages.SUCCESS)
