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

TASK_SORTS = {
    "order": "created_at",  # the order the engine planned them: loop iterations by index
    "name": "key",
    "state": "state",
    "started": "started_at",
    "duration": "duration",
    "kind": "kind",
}
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


def _json(payload: dict[str, Any]) -> HttpResponse:
    body = json.dumps(payload, ensure_ascii=False).translate(_JSON_ESCAPES)
    response = HttpResponse(body, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


def _get_run(request: HttpRequest, run_id: Any, *, with_spec: bool = True) -> Any:
    try:
        return selectors.run_get(user=request.user, run_id=run_id, with_spec=with_spec)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


def _is_fragment(request: HttpRequest) -> bool:
    return request.headers.get("X-Canal-Fragment") == "1"


def _run_parameters(run: Any) -> list[dict[str, Any]]:
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


def _run_duration(run: Any) -> Any:
    if not run.started_at:
        return None
    return (run.finished_at or timezone.now()) - run.started_at
