"""Errors as KFP's gateway writes them.

Most endpoints answer ``{"code": <gRPC code>, "message": ..., "details": []}`` with
the matching HTTP status; the two upload endpoints answer
``{"error_message": ..., "error_details": ...}`` (KFP's upload handler is plain
HTTP, not gRPC). Unexpected exceptions become a 500 with a generic message: the
traceback goes to the log, never to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from apps.core.exceptions import ServiceError

logger = logging.getLogger(__name__)

# HTTP status → gRPC code, as grpc-gateway maps them back.
GRPC_CODE_FOR_STATUS = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    405: 12,  # UNIMPLEMENTED
    406: 3,
    409: 6,  # ALREADY_EXISTS
    413: 3,
    415: 3,
    429: 8,  # RESOURCE_EXHAUSTED
    500: 13,  # INTERNAL
    501: 12,
    503: 14,  # UNAVAILABLE
}


def _drf_message(detail: Any) -> str:
    """A one-line message from DRF's error detail (a string, list or dict)."""
    if isinstance(detail, dict):
        parts = [f"{key}: {_drf_message(value)}" for key, value in detail.items()]
        return "; ".join(parts)
    if isinstance(detail, list):
        return "; ".join(_drf_message(item) for item in detail)
    return str(detail)


def describe(exc: Exception) -> tuple[int, int, str, str] | None:
    """(HTTP status, gRPC code, message, field) for an exception we answer, or None."""
    if isinstance(exc, ServiceError):
        return exc.status_code, exc.grpc_code, exc.message, exc.field or ""
    if isinstance(exc, Http404):
        return 404, 5, "not found", ""
    if isinstance(exc, DjangoPermissionDenied):
        return 403, 7, "permission denied", ""
    if isinstance(exc, RequestDataTooBig):
        return 400, 3, "the request body is too large", ""
    if isinstance(exc, SuspiciousOperation):  # e.g. too many files in a multipart body
        return 400, 3, f"bad request: {exc}", ""
    if isinstance(exc, exceptions.APIException):
        code = exc.status_code
        return code, GRPC_CODE_FOR_STATUS.get(code, 2), _drf_message(exc.detail), ""
    return None


def _headers(exc: Exception) -> dict[str, str]:
    headers = {}
    if isinstance(exc, exceptions.APIException):
        auth_header, wait = getattr(exc, "auth_header", None), getattr(exc, "wait", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        if wait:
            headers["Retry-After"] = str(int(wait))
    return headers


def _describe_or_internal(exc: Exception, context: dict[str, Any]) -> tuple[int, int, str, str]:
    described = describe(exc)
    if described is None:
        view = context.get("view")
        logger.exception("unhandled error in API view %s", type(view).__name__ if view else "?", exc_info=exc)
        return 500, 13, "internal error; the server log has the details", ""
    return described


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF exception handler: ``{code, message, details}``."""
    http_status, code, message, _field = _describe_or_internal(exc, context)
    set_rollback()
    return Response(
        {"code": code, "message": message, "details": []}, status=http_status, headers=_headers(exc)
    )


def upload_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """The upload endpoints' ``{error_message, error_details}``."""
    http_status, _code, message, field = _describe_or_internal(exc, context)
    set_rollback()
    details = f"{field}: {message}" if field else message
    return Response(
        {"error_message": message, "error_details": details}, status=http_status, headers=_headers(exc)
    )
