"""Template context shared by every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.core.choices import RUNTIME_STATE_COLORS
from apps.core.selectors import namespace_list_for_user


def canal(request: HttpRequest) -> dict[str, Any]:
    """The namespace switcher's choices and the state colour map."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"state_colors": RUNTIME_STATE_COLORS}
    return {
        "namespaces": SimpleList(lambda: list(namespace_list_for_user(user=user).only("id", "name"))),
        "current_namespace": getattr(request, "namespace", None),
        "state_colors": RUNTIME_STATE_COLORS,
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
