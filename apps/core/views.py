"""Health, home, the namespace switcher, and the early role check other views share."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from apps.core.authz import Action, namespace_authorize
from apps.core.exceptions import NotFound, PermissionDenied
from apps.core.middleware import SESSION_NAMESPACE_KEY
from apps.core.selectors import namespace_get_for_user


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
    """200 when the web process can reach its database; 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any database failure means "not ready"
        return JsonResponse({"status": "unavailable", "error": type(exc).__name__}, status=503)
    return JsonResponse({"status": "ok"})


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
