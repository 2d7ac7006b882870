"""Template context shared by every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.core.authz import namespace_permissions
from apps.core.choices import RUNTIME_STATE_COLORS
from apps.core.selectors import namespace_list_for_user


def canal(request: HttpRequest) -> dict[str, Any]:
    """The namespace switcher's choices, the state colour map, and ``can``: what the
    user may do in the current namespace (pages about one object override it with
    that object's namespace). ``can`` costs a query only if a template reads it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"state_colors": RUNTIME_STATE_COLORS}
    return {
        "namespaces": SimpleList(lambda: list(namespace_list_for_user(user=user).only("id", "name"))),
        "current_namespace": getattr(request, "namespace", None),
        "state_colors": RUNTIME_STATE_COLORS,
        "can": SimpleLazyObject(
            lambda: namespace_permissions(actor=user, namespace=getattr(request, "namespace", None))
        ),
    }


class SimpleList:
    """Evaluate a list only if a template iterates it (no query on pages without a switcher)."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._value: list[Any] | None = None

    def __iter__(self) -> Any:
        if self._value is None:
            self._value = self._factory()
        return iter(self._value)

    def __len__(self) -> int:
        return len(list(iter(self)))
