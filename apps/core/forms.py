"""What every Canal form shares: text and JSON from the browser are checked at the edge.

Django's form parsing already replaces bytes that are not UTF-8 and its CharField
refuses NUL, but a value can still carry text Canal cannot store or render: JSON
typed into a field decodes ``"\\ud800"`` to a lone surrogate, and nesting it
100,000 levels deep overflowed the parser's stack. ``CanalForm`` runs every cleaned
value through ``apps.engine.untrusted`` (the checks the REST API and the importers
use), and ``parse_json_text`` is how a field reads JSON. A refused value is an
error on its field; the view then writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from apps.core.models import Membership
from apps.engine.untrusted import InputError, check_json, loads_json


def input_error_text(exc: InputError) -> str:
    """An InputError as a sentence for a form field ("At [0].k: contains a NUL ...")."""
    if exc.path:
        return f"At {exc.field}: {exc.message}."
    return f"{exc.message[:1].upper()}{exc.message[1:]}."


def parse_json_text(text: str) -> Any:
    """JSON typed into a field, bounded and checked; a ValidationError otherwise."""
    try:
        return loads_json(text)
    except InputError as exc:
        raise forms.ValidationError(input_error_text(exc)) from None


class CanalForm(forms.Form):
    """Base class of Canal's forms: every cleaned string, list and mapping is checked
    (valid Unicode, no NUL, bounded nesting); a problem becomes an error on its field."""

    def clean(self) -> dict[str, Any]:
        super().clean()
        for name, value in list(self.cleaned_data.items()):
            if not isinstance(value, str | list | tuple | Mapping):
                continue  # numbers, dates, files: their fields already parsed them
            try:
                check_json(value, json_only=False)
            except InputError as exc:
                self.add_error(name, input_error_text(exc))
        return self.cleaned_data


class MemberAddForm(CanalForm):
    """Add an existing user, by username, with a role (the namespace members page)."""

    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.VIEWER)


class MemberRoleForm(CanalForm):
    """Change one member's role."""

    role = forms.ChoiceField(choices=Membership.Role.choices)
