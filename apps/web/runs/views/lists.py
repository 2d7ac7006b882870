"""The runs list and its bulk actions."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from apps.core.authz import Action
from apps.core.exceptions import ServiceError
from apps.core.middleware import NamespacedRequest
from apps.core.views import require_role
from apps.runs import selectors, services
from apps.web.runs.tables import runs_table_context
from apps.web.runs.views.common import (
    safe_next_url,
)


@require_GET
def run_list(request: NamespacedRequest) -> HttpResponse:
    """Active or archived runs of the current namespace."""
    archived = request.GET.get("view") == "archived"
    qs = selectors.run_list_with_duration(user=request.user, namespace=request.namespace or None)
    context = runs_table_context(request, qs, archived=archived)
    return render(request, "runs/list.html", context)


BULK_ACTIONS = {"archive": Action.RUN_ARCHIVE, "restore": Action.RUN_ARCHIVE, "delete": Action.RUN_DELETE}


@require_POST
def run_bulk(request: HttpRequest) -> HttpResponse:
    """Archive, restore or delete the selected runs; each one reports its own refusal.
    "Compare" goes on to the compare page with the selected runs in the address (this form
    is a POST form: a GET submission of it would put its CSRF token into the URL)."""
    action = request.POST.get("action", "")
    target = safe_next_url(request, reverse("runs:list"))
    if action != "compare" and action not in BULK_ACTIONS:
        messages.error(request, "Choose archive, restore or delete.")
        return HttpResponseRedirect(target)
    ids = []
    for value in request.POST.getlist("run"):
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    if action == "compare":
        # The compare page checks the count and that each run is visible to the user.
        query = urlencode([("run", str(pk)) for pk in dict.fromkeys(ids)])
        return HttpResponseRedirect(f"{reverse('runs:compare')}?{query}")
    runs = list(selectors.run_list_by_ids(user=request.user, ids=ids))
    if not runs:
        messages.error(request, "Select at least one run.")
        return HttpResponseRedirect(target)
    # All or nothing on roles: if the user may not act on one of the selected runs'
    # namespaces, refuse the whole request (403) before touching any of them.
    for namespace in dict.fromkeys(run.namespace for run in runs):
        require_role(request, namespace, BULK_ACTIONS[action])
    done, refused = 0, []
    for run in runs:
        try:
            if action == "archive":
                services.run_archive(actor=request.user, run=run)
            elif action == "restore":
                services.run_unarchive(actor=request.user, run=run)
            else:
                services.run_delete(actor=request.user, run=run)
            done += 1
        except ServiceError as exc:
            refused.append(f"{run.display_name}: {exc.message}")
    verb = {"archive": "Archived", "restore": "Restored", "delete": "Deleted"}[action]
    if done:
        messages.success(request, f"{verb} {done} run{'s' if done != 1 else ''}.")
    for reason in refused:
        messages.error(request, reason)
    return HttpResponseRedirect(target)
