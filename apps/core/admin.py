from django.contrib import admin
from django.http import HttpRequest

from apps.core.models import ApiToken, Membership, Namespace, ProcessHeartbeat


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Namespace)
class NamespaceAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "created_at"]
    search_fields = ["name", "description"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "namespace", "role", "created_at"]
    list_filter = ["role", "namespace"]
    search_fields = ["user__username", "namespace__name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created with `manage.py create_api_token` (the plaintext is shown
    once); here operators can see and revoke them."""

    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["user", "prefix", "digest", "created_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: object) -> None:
        updated = queryset.update(revoked=True)  # type: ignore[attr-defined]
        self.message_user(request, f"Revoked {updated} token(s).")


@admin.register(ProcessHeartbeat)
class ProcessHeartbeatAdmin(admin.ModelAdmin):
    """Which workers and schedulers are (or were) running, where, and when each last
    reported; /healthz shows only the counts, to anyone."""

    list_display = ["kind", "hostname", "pid", "started_at", "last_seen"]
    list_filter = ["kind", "hostname"]
    readonly_fields = ["id", "kind", "hostname", "pid", "started_at", "last_seen"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
