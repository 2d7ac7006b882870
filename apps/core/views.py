"""Health, home and the namespace switcher."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from apps.core.exceptions import NotFound
from apps.core.middleware import SESSION_NAMESPACE_KEY
from apps.core.selectors import namespace_get_for_user, process_liveness


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
    healthy = all(p["status"] == "ok" for p in processes.values())
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
