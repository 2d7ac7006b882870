"""A task's log: live tail from an offset, and download."""

from __future__ import annotations

from typing import Any

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.views.decorators.http import require_GET

from apps.core.choices import RuntimeState
from apps.core.exceptions import NotFound
from apps.runs import selectors
from apps.web.runs.views.common import (
    LOG_CHUNK,
    json_response,
    run_or_404,
)


def _utf8_boundary(data: bytes, at_end: bool) -> bytes:
    """Cut a chunk before a UTF-8 sequence split by the read limit (it is read next time)."""
    if at_end:
        return data
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: keep looking for the lead byte
        if byte & 0x80 == 0:
            return data
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return data if back >= need else data[:-back]
    return data


def _task_for_log(request: HttpRequest, run_id: str, task_id: str) -> tuple[Any, Any]:
    run = run_or_404(request, run_id, with_spec=False)
    try:
        task = selectors.task_get(run=run, task_id=task_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return run, task


def _attempt_param(request: HttpRequest) -> int | None:
    try:
        value = int(request.GET.get("attempt", "0"))
    except ValueError:
        return None
    return value if value > 0 else None


@require_GET
def task_log(request: HttpRequest, run_id: str, task_id: str) -> HttpResponse:
    """A chunk of a task attempt's log from ``offset`` (negative: from the end), as JSON
    text the page appends with textContent. ``active`` says whether to keep tailing."""
    _, task = _task_for_log(request, run_id, task_id)
    try:
        offset = int(request.GET.get("offset", "0"))
    except ValueError:
        offset = 0
    attempt = _attempt_param(request)
    active = task.state in RuntimeState.active() and (attempt is None or attempt == task.attempt)
    try:
        if offset < 0:  # the tail: from ``-offset`` bytes before the end
            size = selectors.task_log_read(task=task, attempt=attempt, offset=0, limit=0).size
            offset = max(0, size + offset)
            tail = True
        else:
            tail = False
        chunk = selectors.task_log_read(task=task, attempt=attempt, offset=offset, limit=LOG_CHUNK)
    except NotFound as exc:
        return json_response({"error": exc.message, "active": active, "text": "", "at_end": True})
    data, start = chunk.data, chunk.offset
    if tail:  # a tail may start inside a UTF-8 sequence: skip its continuation bytes
        skip = 0
        while skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:
            skip += 1
        data, start = data[skip:], start + skip
    data = _utf8_boundary(data, chunk.at_end)
    return json_response(
        {
            "text": data.decode("utf-8", errors="replace"),
            "offset": start,
            "next_offset": start + len(data),
            "size": chunk.size,
            "at_end": start + len(data) >= chunk.size,
            "active": active,
            "state": task.state,
            "attempt": attempt or task.attempt,
        }
    )


@require_GET
def task_log_download(request: HttpRequest, run_id: str, task_id: str) -> StreamingHttpResponse:
    """The whole log of one attempt, as a plain-text attachment."""
    run, task = _task_for_log(request, run_id, task_id)
    attempt = _attempt_param(request)
    try:
        chunks = selectors.task_log_stream(task=task, attempt=attempt)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    response = StreamingHttpResponse(chunks, content_type="text/plain; charset=utf-8")
    filename = f"{run.pk}-{task.name}-attempt-{attempt or task.attempt}.log".replace('"', "")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
