"""Errors as the Kubernetes API server sends them: ``kind: Status`` bodies with a reason and a code.

The messages copy the API server's wording (``k8s.io/apimachinery``'s
``errors`` package), so a client's ``ApiException`` reads the same here as
against a real cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ApiError", "Resource", "status_object", "success_status"]


@dataclass(frozen=True)
class Resource:
    """A kind of object the emulator serves (``workflows.argoproj.io``, ``pods``)."""

    plural: str
    singular: str
    kind: str
    group: str
    version: str
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """``group/version``, or just ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``plural.group`` as error messages name it (``pods`` for the core group)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        """The kind of a list of these objects."""
        return f"{self.kind}List"


def status_object(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A failure ``Status`` object."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


def success_status(resource: Resource, name: str, uid: str) -> dict[str, Any]:
    """The ``Status`` a delete answers with when the object is gone at once."""
    details: dict[str, Any] = {"name": name, "kind": resource.plural, "uid": uid}
    if resource.group:
        details["group"] = resource.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


class ApiError(Exception):
    """An API request that fails; ``status()`` is the body the server answers with."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The ``kind: Status`` body."""
        return status_object(self.code, self.reason, self.message, self.details)

    @staticmethod
    def _details(resource: Resource, name: str) -> dict[str, Any]:
        details: dict[str, Any] = {"name": name, "kind": resource.plural}
        if resource.group:
            details["group"] = resource.group
        return details

    @classmethod
    def not_found(cls, resource: Resource, name: str) -> ApiError:
        """404: the object does not exist."""
        return cls(404, "NotFound", f'{resource.qualified} "{name}" not found', cls._details(resource, name))

    @classmethod
    def no_route(cls) -> ApiError:
        """404: no such path."""
        return cls(404, "NotFound", "the server could not find the requested resource", {})

    @classmethod
    def already_exists(cls, resource: Resource, name: str) -> ApiError:
        """409: create of a name that exists."""
        return cls(
            409,
            "AlreadyExists",
            f'{resource.qualified} "{name}" already exists',
            cls._details(resource, name),
        )

    @classmethod
    def conflict(cls, resource: Resource, name: str, why: str) -> ApiError:
        """409: a precondition (resourceVersion, uid) does not hold."""
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {resource.qualified} "{name}": {why}',
            cls._details(resource, name),
        )

    @classmethod
    def invalid(cls, resource: Resource, name: str, field: str, why: str) -> ApiError:
        """422: the object fails validation."""
        kind = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
        cause = {"reason": "FieldValueInvalid", "message": f"Invalid value: {why}", "field": field}
        details: dict[str, Any] = {"name": name, "kind": resource.kind, "causes": [cause]}
        if resource.group:
            details["group"] = resource.group
        return cls(422, "Invalid", f'{kind} "{name}" is invalid: {field}: {why}', details)

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        """400."""
        return cls(400, "BadRequest", message)

    @classmethod
    def unauthorized(cls) -> ApiError:
        """401: no or a wrong bearer token."""
        return cls(401, "Unauthorized", "Unauthorized")

    @classmethod
    def method_not_allowed(cls) -> ApiError:
        """405."""
        return cls(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @classmethod
    def gone(cls, message: str) -> ApiError:
        """410: a watch from a resourceVersion older than the server remembers."""
        return cls(410, "Expired", message)

    @classmethod
    def too_large(cls, limit: int) -> ApiError:
        """413."""
        return cls(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")

    @classmethod
    def unsupported_media_type(cls, content_type: str, accepted: list[str]) -> ApiError:
        """415: a patch type the resource does not take."""
        return cls(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format ({content_type!r}) - accepted media types "
            f"include: {', '.join(accepted)}",
        )

    @classmethod
    def injected(cls, code: int) -> ApiError:
        """An answer forced by fault injection (401, 429, 500, 503, ...)."""
        reasons = {
            401: ("Unauthorized", "Unauthorized"),
            403: ("Forbidden", "forbidden (injected by the emulator)"),
            429: (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            ),
            500: (
                "InternalError",
                "an error on the server (injected by the emulator) has prevented the request",
            ),
            503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
            504: ("Timeout", "the server was unable to return a response in the time allotted"),
        }
        reason, message = reasons.get(code, ("InternalError", f"injected failure {code}"))
        return cls(code, reason, message)
