"""Admin for namespaces, memberships and tokens, and ``ServiceWriteAdmin``: the base of
every Canal admin whose writes go through the services (so the roles and the
invariants the services keep hold in the admin too)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from apps.core import services
from apps.core.exceptions import ServiceError
from apps.core.models import ApiToken, Membership, Namespace, ProcessHeartbeat

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    # django-stubs makes the admin classes generic in their model; Django's own classes
    # cannot be subscripted at run time, so the parameterised names exist for mypy only.
    ModelAdmin = admin.ModelAdmin[Any]
    TabularInline = admin.TabularInline[Any, Any]
else:
    ModelAdmin = admin.ModelAdmin
    TabularInline = admin.TabularInline


def pretty_json(value: Any) -> str:
    """A JSON document for a read-only admin field: indented, in a <pre>, HTML-escaped
    (format_html escapes the text; nothing of the document is ever markup)."""
    if value is None:
        return "-"
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return format_html('<pre class="admin-json">{}</pre>', text)


def pretty_text(value: str) -> str:
    """A long text (e.g. uploaded YAML) in a <pre>, escaped, keeping its line breaks."""
    return format_html('<pre class="admin-json">{}</pre>', value) if value else "-"


ADMIN_MEDIA_CSS = {"all": ["css/compare.css"]}


class NamespacedRelatedFilter(admin.RelatedFieldListFilter):
    """A filter on a foreign key to a namespaced model (e.g. experiments), whose choices
    read "namespace / name": every namespace has its own "Default" experiment. One query."""

    def field_choices(
        self, field: Any, request: HttpRequest, model_admin: Any
    ) -> list[tuple[str, StrOrPromise]]:
        qs = field.related_model._default_manager.select_related("namespace").order_by(
            "namespace__name", "display_name"
        )
        # Django compares the choices with the query string's text: str(pk) is what it uses too.
        return [(str(obj.pk), str(obj)) for obj in qs]


class ServiceWriteAdmin(ModelAdmin):
    """A model admin that never writes rows itself: adding and editing are off unless a
    subclass routes them to a service, and deleting (one object, or "Delete selected")
    calls ``service_delete``, which checks the acting admin's role like the UI and the
    API do. A refusal (e.g. a pipeline still used by runs) is shown as a message."""

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        """Delete ``obj`` through its service, acting as ``request.user``."""
        raise NotImplementedError

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        """Django's site-wide "Delete selected" replaced by this class's (same name)."""
        # django-stubs types an action as returning str; Django accepts any response.
        actions: dict[str, Any] = dict(super().get_actions(request))
        if "delete_selected" in actions:
            _, name, description = actions["delete_selected"]
            actions["delete_selected"] = (ServiceWriteAdmin.delete_selected, name, description)
        return actions

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.service_delete(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.service_delete(request, obj)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceError as exc:  # the admin's transaction rolled back: nothing was deleted
            self.message_user(request, exc.message, messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))

    @admin.action(description="Delete selected %(verbose_name_plural)s", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        """Django's confirmation page, then one service call per object, each refusal reported
        (Django's own action would say "deleted" for all of them)."""
        if not request.POST.get("post"):
            return django_delete_selected(self, request, queryset)
        done, refused = 0, []
        for obj in queryset:
            try:
                self.service_delete(request, obj)
            except ServiceError as exc:
                refused.append(f"{obj}: {exc.message}")
            else:
                done += 1
        if done:
            self.message_user(request, f"Deleted {done} {self.model._meta.verbose_name_plural}.")
        for reason in refused:
            self.message_user(request, reason, messages.ERROR)
        return None


class MembershipInline(TabularInline):
    """Members are shown here and managed on the namespace's members page, where the
    roles and the last-owner rule are checked."""

    model = Membership
    extra = 0
    fields = ("user", "role", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Namespace)
class NamespaceAdmin(ServiceWriteAdmin):
    """Administrators create namespaces here (namespace_create) and edit descriptions;
    members are managed on the members page linked from each row."""

    list_display = ["name", "description", "created_at", "members_link"]
    search_fields = ["name", "description"]
    inlines = [MembershipInline]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_add_permission(self, request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (
            ("name", "description", "created_at", "members_link")
            if obj is not None
            else ("name", "description")
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The name is the namespace's identity in URLs and API calls: set once.
        return ["name", "created_at", "members_link"] if obj is not None else []

    @admin.display(description="Members")
    def members_link(self, obj: Namespace) -> str:
        return format_html('<a href="{}">Manage members</a>', reverse("namespace-members", args=[obj.name]))

    def save_model(self, request: HttpRequest, obj: Namespace, form: Any, change: bool) -> None:
        if change:
            services.namespace_update(actor=request.user, namespace=obj, description=obj.description)
            return
        created = services.namespace_create(actor=request.user, name=obj.name, description=obj.description)
        obj.pk, obj.created_at = created.pk, created.created_at

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The form was not saved by Django (save_model called a service), so there is no
        save_m2m to call; the read-only memberships inline saves nothing but is asked to,
        because the admin's history entry reads what each formset did."""
        for formset in formsets:
            formset.save()

    def service_delete(self, request: HttpRequest, obj: Namespace) -> None:
        services.namespace_delete(actor=request.user, namespace=obj)


@admin.register(Membership)
class MembershipAdmin(ModelAdmin):
    """Read-only: members are managed on each namespace's members page."""

    list_display = ["user", "namespace", "role", "created_at"]
    list_filter = ["role", "namespace"]
    search_fields = ["user__username", "namespace__name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(ModelAdmin):
    """Tokens are created with `manage.py create_api_token` (the plaintext is shown
    once); here operators can see and revoke them (api_token_revoke)."""

    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["user", "name", "prefix", "digest", "created_at", "last_used_at", "revoked"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the row stays, so its use stays on record

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = 0
        for token in queryset.select_related("user"):
            services.api_token_revoke(actor=request.user, token=token)
            count += 1
        self.message_user(request, f"Revoked {count} token(s).")


@admin.register(ProcessHeartbeat)
class ProcessHeartbeatAdmin(ModelAdmin):
    """Which workers and schedulers are (or were) running, where, and when each last
    reported; /healthz shows only the counts, to anyone."""

    list_display = ["kind", "hostname", "pid", "started_at", "last_seen"]
    list_filter = ["kind", "hostname"]
    readonly_fields = ["id", "kind", "hostname", "pid", "started_at", "last_seen"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
