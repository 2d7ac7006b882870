"""What every API view shares: JSON only, KFP error bodies, namespace resolution,
and list responses."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from apps.api import errors, wire
from apps.api.listing import ListRequest, Resource, paginate, parse_list_request
from apps.api.parsing import KfpJSONParser
from apps.core.exceptions import NotFound
from apps.core.selectors import namespace_default_for_user, namespace_get_for_user


class KfpJSONRenderer(JSONRenderer):
    """JSON, with non-finite floats written as protobuf writes them (never a 500)."""

    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except ValueError:
            return super().render(wire.json_safe(data), accepted_media_type, renderer_context)


class JSONOnly(DefaultContentNegotiation):
    """The gateway answers JSON whatever the Accept header says; so do we."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: Any = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class KfpView(APIView):
    """Base API view: JSON in and out, ``{code, message, details}`` errors."""

    renderer_classes = [KfpJSONRenderer]
    # DRF's defaults, with a JSON parser that checks text, nesting and numbers.
    parser_classes = [KfpJSONParser, FormParser, MultiPartParser]
    content_negotiation_class = JSONOnly

    def get_exception_handler(self) -> Callable[..., Response]:
        return errors.exception_handler


def namespace_for(user: Any, name: str | None) -> Any:
    """The named namespace if the user is a member (staff: any); the user's default
    namespace when no name is given. Another namespace is reported as not found."""
    if name:
        return namespace_get_for_user(user=user, name=name)
    namespace = namespace_default_for_user(user=user)
    if namespace is None:
        raise NotFound("you are not a member of any namespace; ask an administrator to add you to one")
    return namespace


def answer(serializer: type[Serializer[Any]], message: Any) -> Response:
    """A 200 whose body ``serializer`` writes (the OpenAPI document describes it)."""
    return Response(serializer(message).data)


def list_page(
    request: Request,
    qs: Any,
    resource: Resource,
    serializer: type[Serializer[Any]],
    to_wire: Callable[[Any], dict[str, Any]],
    *,
    parsed: ListRequest | None = None,
) -> Response:
    """Filter, sort and page ``qs`` from the query parameters; answer the List response
    (its items key is the serializer's first field: ``runs``, ``recurringRuns``...)."""
    page = paginate(qs, parsed or parse_list_request(request.query_params, resource))
    items_key = next(iter(serializer().fields))
    items = [to_wire(row) for row in page.rows]
    return answer(
        serializer, {items_key: items, "total_size": page.total_size, "next_page_token": page.next_page_token}
    )


EMPTY: dict[str, Any] = {}


class NotFoundView(KfpView):
    """Unknown paths under the API prefix: ``{code: 5, ...}`` rather than an HTML page."""

    schema = None  # not part of the OpenAPI document

    def _not_found(self, request: Request, unknown: str = "") -> Response:
        raise NotFound(f"no API method at {request.path!r}; see /apis/v2beta1/docs/")

    get = post = put = patch = delete = _not_found
