from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.core.admin import ADMIN_MEDIA_CSS, ServiceWriteAdmin, TabularInline, pretty_json, pretty_text
from apps.pipelines import services
from apps.pipelines.models import Pipeline, PipelineVersion


class PipelineVersionInline(TabularInline):
    model = PipelineVersion
    extra = 0
    fields = ("name", "format", "content_hash", "created_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Pipeline)
class PipelineAdmin(ServiceWriteAdmin):
    """Read-only, with deletion through pipeline_delete (refused while runs use it).
    Pipelines are uploaded from the UI or the API, which parse and validate them."""

    list_display = ["display_name", "name", "namespace", "created_by", "created_at"]
    list_filter = ["namespace", "created_at"]
    search_fields = ["name", "display_name", "description", "id"]
    readonly_fields = ["id", "created_at"]
    inlines = [PipelineVersionInline]

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        services.pipeline_delete(actor=request.user, pipeline=obj, cascade=True)


@admin.register(PipelineVersion)
class PipelineVersionAdmin(ServiceWriteAdmin):
    """Read-only, with deletion through pipeline_version_delete."""

    list_display = ["display_name", "pipeline", "format", "short_hash", "created_at"]
    list_filter = ["format", "created_at", "pipeline__namespace"]
    search_fields = ["name", "display_name", "pipeline__name", "content_hash", "id"]
    fields = (
        "id",
        "pipeline",
        "name",
        "display_name",
        "description",
        "format",
        "source_filename",
        "code_source_url",
        "content_hash",
        "created_at",
        "created_by",
        "pipeline_spec_pretty",
        "platform_spec_pretty",
        "source_pretty",
    )
    readonly_fields = fields
    list_select_related = ["pipeline"]

    class Media:
        css = ADMIN_MEDIA_CSS

    @admin.display(description="pipeline spec")
    def pipeline_spec_pretty(self, obj: PipelineVersion) -> str:
        return pretty_json(obj.pipeline_spec)

    @admin.display(description="platform spec")
    def platform_spec_pretty(self, obj: PipelineVersion) -> str:
        return pretty_json(obj.platform_spec)

    @admin.display(description="source (as uploaded)")
    def source_pretty(self, obj: PipelineVersion) -> str:
        return pretty_text(obj.source)

    @admin.display(description="sha256")
    def short_hash(self, obj: PipelineVersion) -> str:
        return obj.content_hash[:12]

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        services.pipeline_version_delete(actor=request.user, version=obj)
