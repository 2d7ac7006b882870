from django.contrib import admin

from apps.schedules.models import RecurringRun


@admin.register(RecurringRun)
class RecurringRunAdmin(admin.ModelAdmin):
    list_display = [
        "display_name",
        "status",
        "trigger_type",
        "cron",
        "interval_second",
        "timezone",
        "max_concurrency",
        "no_catchup",
        "next_fire_time",
        "experiment",
    ]
    list_filter = ["status", "mode", "trigger_type", "namespace"]
    search_fields = ["display_name", "id", "cron"]
    readonly_fields = ["id", "created_at", "updated_at", "last_fire_time", "next_fire_time"]
    list_select_related = ["experiment"]
