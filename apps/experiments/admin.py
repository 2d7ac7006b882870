from django.contrib import admin

from apps.experiments.models import Experiment


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["display_name", "namespace", "storage_state", "created_at", "last_run_created_at"]
    list_filter = ["storage_state", "namespace"]
    search_fields = ["display_name", "description", "id"]
    readonly_fields = ["id", "created_at", "last_run_created_at"]
