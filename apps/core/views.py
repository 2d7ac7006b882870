"""Health, home, the namespace switcher, the members page, and the early role check
other views share."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core import services
from apps.core.authz import Action, namespace_authorize, namespace_permissions
from apps.core.exceptions import NotFound, PermissionDenied, ServiceError
from apps.core.forms import MemberAddForm, MemberRoleForm
from apps.core.middleware import SESSION_NAMESPACE_KEY
from apps.core.selectors import membership_get, membership_list, namespace_get_for_user, process_liveness


def require_role(request: HttpRequest, namespace: Any, action: Action) -> None:
    """Refuse a page early, before its form is read or shown: 403 for a role too low,
    404 for a namespace the user is not in. It is the service's own check
    (``namespace_authorize``), called sooner; the service still checks when it writes."""
    if not namespace:  # None, or request.namespace's lazy None (the user is in no namespace)
        raise PermissionDenied(
            "you are not a member of any namespace; ask an administrator to add you to one"
        )
    try:
        namespace_authorize(actor=request.user, namespace=namespace, action=action)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness of the web process and of the background processes, for people and
    load balancers; no login, one query.

    200 whenever this web process can reach its database, with each background
    process kind's heartbeat: a dead worker must not make a load balancer pull the
    web server, which still serves the UI, the API and the run history. ``status`` is
    ``degraded`` then, and ``?strict=1`` turns that into a 503 for monitors that want
    everything. 503 when the database is unreachable. No hostnames or pids (the
    admin lists those, under Process heartbeats)."""
    try:
        processes = process_liveness(stale_after_seconds=settings.CANAL_PROCESS_STALE_SECONDS)
    except Exception as exc:  # any database failure means "not ready"
        return JsonResponse(
            {"status": "unavailable", "web": {"status": "unavailable", "error": type(exc).__name__}},
            status=503,
        )
    healthy = all(p["status"] == "ok" for _, p in processes.items())
    body = {"status": "ok" if healthy else "degraded", "web": {"status": "ok"}, **processes}
    strict = request.GET.get("strict", "") not in ("", "0")
    return JsonResponse(body, status=503 if strict and not healthy else 200)


def home(request: HttpRequest) -> HttpResponse:
    """The dashboard starts at the runs list."""
    return redirect("runs:list")


@require_POST
def namespace_switch(request: HttpRequest) -> HttpResponse:
    """Remember the chosen namespace in the session (only one the user may see)."""
    name = request.POST.get("namespace", "")
    try:
        namespace = namespace_get_for_user(user=request.user, name=name)
    except NotFound as exc:
        messages.error(request, exc.message)
    else:
        request.session[SESSION_NAMESPACE_KEY] = namespace.name
    target = request.POST.get("next", "/")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return HttpResponseRedirect(target)


def _namespace(request: HttpRequest, name: str) -> Any:
    try:
        return namespace_get_for_user(user=request.user, name=name)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@require_http_methods(["GET", "POST"])
def namespace_members(request: HttpRequest, name: str) -> HttpResponse:
    """A namespace's members and roles. Every member sees the list; owners (and
    admins) add members here (POST) and change or remove them from each row."""
    namespace = _namespace(request, name)
    form = MemberAddForm(request.POST or None)
    status = 200
    if request.method == "POST":
        require_role(request, namespace, Action.MEMBERS_MANAGE)
        status = 400
        if form.is_valid():
            try:
                membership = services.membership_add(
                    actor=request.user,
                    namespace=namespace,
                    username=form.cleaned_data["username"],
                    role=form.cleaned_data["role"],
                )
            except ServiceError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Added {membership.user} as {membership.get_role_display()}.")
                return redirect("namespace-members", name=namespace.name)
    members = list(membership_list(namespace=namespace))
    rows = []
    for member in members:
        role_form = MemberRoleForm(initial={"role": member.role}, prefix=f"m{member.pk}")
        role_form.fields["role"].widget.attrs["aria-label"] = f"Role of {member.user}"
        rows.append({"membership": member, "form": role_form})
    return render(
        request,
        "core/members.html",
        {
            "namespace": namespace,
            "rows": rows,
            "form": form,
            "can": namespace_permissions(actor=request.user, namespace=namespace),
        },
        status=status,
    )


def _member(request: HttpRequest, name: str, membership_id: int) -> Any:
    namespace = _namespace(request, name)
    require_role(request, namespace, Action.MEMBERS_MANAGE)
    try:
        return membership_get(namespace=namespace, membership_id=membership_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@require_POST
def namespace_member_role(request: HttpRequest, name: str, membership_id: int) -> HttpResponse:
    """Change a member's role (owners and admins; the last owner stays an owner)."""
    membership = _member(request, name, membership_id)
    form = MemberRoleForm(request.POST, prefix=f"m{membership.pk}")
    if not form.is_valid():
        messages.error(request, f"Choose a role for {membership.user}.")
    else:
        try:
            services.membership_set_role(
                actor=request.user, membership=membership, role=form.cleaned_data["role"]
            )
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{membership.user} is now {membership.get_role_display()}.")
    return redirect("namespace-members", name=membership.namespace.name)


@require_POST
def namespace_member_remove(request: HttpRequest, name: str, membership_id: int) -> HttpResponse:
    """Remove a member (owners and admins; the last owner cannot be removed)."""
    membership = _member(request, name, membership_id)
    try:
        services.membership_remove(actor=request.user, membership=membership)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Removed {membership.user} from {membership.namespace.name}.")
        if (
            membership.user_id == request.user.pk
            and not namespace_permissions(actor=request.user, namespace=membership.namespace).view
        ):
            return redirect("home")  # they left: the members page is no longer theirs to see
    return redirect("namespace-members", name=membership.namespace.name)
