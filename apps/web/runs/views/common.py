"""Helpers and constants shared by the run pages."""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from apps.core.exceptions import NotFound
from apps.engine.runtime_params import root_parameters, type_label
from apps.runs import selectors

TASK_PAGE = 50
INSTANCE_PAGE = 50
LOG_CHUNK = 256 * 1024
LOG_FALLBACK = 64 * 1024  # the log tail rendered into the page for browsers without JavaScript
MAX_COMPARE = 10
# Service errors about these fields belong to the recurring-run trigger form.
TRIGGER_ERROR_FIELDS = {"interval_second", "trigger_type", "cron", "start_time", "end_time", "timezone"}

# JSON for the page's scripts, with <, > and & escaped (as json_script does): even if a
# browser were tricked into rendering it as HTML, no markup from the data could appear.
_JSON_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def json_response(payload: dict[str, Any]) -> HttpResponse:
    """``payload`` as an uncached JSON response, with <, > and & escaped."""
    body = json.dumps(payload, ensure_ascii=False).translate(_JSON_ESCAPES)
    response = HttpResponse(body, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


def run_or_404(request: HttpRequest, run_id: Any, *, with_spec: bool = True) -> Any:
    """The run, if the user may see it; else 404."""
    try:
        return selectors.run_get(user=request.user, run_id=run_id, with_spec=with_spec)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def safe_next_url(request: HttpRequest, fallback: str) -> str:
    """The request's ``next`` URL when it stays on this host, else ``fallback``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


def is_fragment_request(request: HttpRequest) -> bool:
    """Whether the page's script asked for a fragment rather than the whole page."""
    return request.headers.get("X-Canal-Fragment") == "1"


def run_parameter_rows(run: Any) -> list[dict[str, Any]]:
    """The run's parameters as rows to show: the pipeline's declared ones (given or
    default) with their types, then any given that the pipeline does not declare."""
    given = run.runtime_parameters or {}
    rows = []
    try:
        specs = root_parameters(run.pipeline_spec or {})
    except (AttributeError, TypeError):
        specs = []
    for spec in specs:
        rows.append(
            {
                "name": spec.name,
                "type": type_label(spec.type),
                "value": given.get(spec.name, spec.default),
                "is_default": spec.name not in given,
                "description": spec.description,
            }
        )
    known = {s.name for s in specs}
    rows += [
        {"name": k, "type": "", "value": v, "is_default": False, "description": ""}
        for k, v in given.items()
        if k not in known
    ]
    return rows


def run_duration(run: Any) -> Any:
    """How long the run ran (so far, when it has not finished); None before it starts."""
    if not run.started_at:
        return None
    return (run.finished_at or timezone.now()) - run.started_at
