"""Errors raised by services. Views turn them into form errors or messages; the
REST API turns them into KFP-style error bodies with the matching status code."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied


class ServiceError(Exception):
    """Base class: a request that cannot be carried out, with a user-facing message."""

    status_code = 400
    grpc_code = 3  # INVALID_ARGUMENT

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ServiceError):
    """The input is malformed or refers to something that does not fit."""


class NotFound(ServiceError):
    """The object does not exist, or the caller may not see it (same answer for both)."""

    status_code = 404
    grpc_code = 5


class Conflict(ServiceError):
    """The object already exists, or its state does not allow the action."""

    status_code = 409
    grpc_code = 6  # ALREADY_EXISTS


class FailedPrecondition(ServiceError):
    """The action is not allowed in the object's current state."""

    status_code = 400
    grpc_code = 9


class PermissionDenied(ServiceError, DjangoPermissionDenied):
    """The caller is authenticated but may not do this (their role is too low).

    Also a Django PermissionDenied, so a web view that lets it propagate answers
    403 with the site's error page; the REST API answers its KFP-style 403 body.
    """

    status_code = 403
    grpc_code = 7


class Unimplemented(ServiceError):
    """A KFP method that has no meaning in Canal (gRPC UNIMPLEMENTED, HTTP 501)."""

    status_code = 501
    grpc_code = 12
