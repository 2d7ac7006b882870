"""Request plumbing: login everywhere, and the current namespace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.functional import SimpleLazyObject

from apps.core.models import Namespace
from apps.core.selectors import namespace_default_for_user, namespace_list_for_user

SESSION_NAMESPACE_KEY = "canal_namespace"
API_PREFIX = "/apis/"


class CanalLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Django's login-required default, except for the REST API, which must answer
    401 with a JSON body (DRF's IsAuthenticated does that) instead of redirecting
    API clients to an HTML login page."""

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        if request.path.startswith(API_PREFIX):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class NamespacedRequest(HttpRequest):
    """The type of a request behind NamespaceMiddleware, for the views' annotations.
    ``namespace`` is the current namespace; at run time it is a lazy object, which wraps
    None when the user is in no namespace: test it with ``not`` (``require_role`` does),
    never ``is None``."""

    namespace: Namespace


def _current_namespace(request: HttpRequest) -> Namespace | None:
    user = request.user
    if not user.is_authenticated:
        return None
    wanted = request.session.get(SESSION_NAMESPACE_KEY)
    if wanted:
        chosen = namespace_list_for_user(user=user).filter(name=wanted).first()
        if chosen is not None:
            return chosen
    return namespace_default_for_user(user=user)


class NamespaceMiddleware:
    """Sets ``request.namespace``: the namespace chosen in the switcher, if the user
    may see it, else their default. Evaluated lazily, so pages that don't use it
    cost no query."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.namespace = SimpleLazyObject(lambda: _current_namespace(request))  # type: ignore[attr-defined]  # NamespacedRequest types it for the views
        return self.get_response(request)
