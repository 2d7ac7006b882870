"""Run actions from the run page: terminate, retry, archive, restore, delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core.authz import Action
from apps.core.exceptions import ServiceError
from apps.core.views import require_role
from apps.runs import services
from apps.web.runs.views.common import (
    run_or_404,
    safe_next_url,
)

ROLE_FOR = {
    "terminate": Action.RUN_TERMINATE,
    "retry": Action.RUN_RETRY,
    "archive": Action.RUN_ARCHIVE,
    "unarchive": Action.RUN_ARCHIVE,
    "delete": Action.RUN_DELETE,
}


def _run_action(request: HttpRequest, run_id: Any, action: str) -> HttpResponse:
    run = run_or_404(request, run_id, with_spec=False)
    # A refused role is a 403, not a message on the run page: the button was not offered.
    require_role(request, run.namespace, ROLE_FOR[action])
    detail = reverse("runs:detail", kwargs={"run_id": run.pk})
    actor = request.user
    try:
        if action == "terminate":
            services.run_terminate(actor=actor, run=run)
            messages.success(request, "Terminating the run: running steps are being stopped.")
        elif action == "retry":
            services.run_retry(actor=actor, run=run)
            messages.success(request, "Retrying the failed steps.")
        elif action == "archive":
            services.run_archive(actor=actor, run=run)
            messages.success(request, "Archived the run.")
        elif action == "unarchive":
            services.run_unarchive(actor=actor, run=run)
            messages.success(request, "Restored the run.")
        elif action == "delete":
            services.run_delete(actor=actor, run=run)
            messages.success(request, f"Deleted run {run.display_name}.")
            return HttpResponseRedirect(safe_next_url(request, reverse("runs:list")))
    except ServiceError as exc:
        messages.error(request, exc.message)
    return HttpResponseRedirect(detail)


@require_POST
def run_terminate(request: HttpRequest, run_id: str) -> HttpResponse:
    """Terminate an active run."""
    return _run_action(request, run_id, "terminate")


@require_POST
def run_retry(request: HttpRequest, run_id: str) -> HttpResponse:
    """Retry a failed or canceled run's failed steps."""
    return _run_action(request, run_id, "retry")


@require_POST
def run_archive(request: HttpRequest, run_id: str) -> HttpResponse:
    """Archive a run."""
    return _run_action(request, run_id, "archive")


@require_POST
def run_unarchive(request: HttpRequest, run_id: str) -> HttpResponse:
    """Restore an archived run."""
    return _run_action(request, run_id, "unarchive")


@require_POST
def run_delete(request: HttpRequest, run_id: str) -> HttpResponse:
    """Delete a finished run."""
    return _run_action(request, run_id, "delete")
