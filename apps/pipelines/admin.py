from django.contrib import admin

from apps.pipelines.models import Pipeline, PipelineVersion


class PipelineVersionInline(admin.TabularInline):
    model = PipelineVersion
    extra = 0
    fields = ["name", "format", "content_hash", "created_at"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["display_name", "name", "namespace", "created_by", "created_at"]
    list_filter = ["namespace", "created_at"]
    search_fields = ["name", "display_name", "description", "id"]
    readonly_fields = ["id", "created_at"]
    inlines = [PipelineVersionInline]


@admin.register(PipelineVersion)
class PipelineVersionAdmin(admin.ModelAdmin):
    list_display = ["display_name", "pipeline", "format", "short_hash", "created_at"]
    list_filter = ["format", "created_at", "pipeline__namespace"]
    search_fields = ["name", "display_name", "pipeline__name", "content_hash", "id"]
    readonly_fields = [
        "id",
        "pipeline",
        "format",
        "source",
        "source_filename",
        "pipeline_spec",
        "platform_spec",
        "content_hash",
        "created_at",
        "created_by",
    ]
    list_select_related = ["pipeline"]

    @admin.display(description="sha256")
    def short_hash(self, obj: PipelineVersion) -> str:
        return obj.content_hash[:12]
