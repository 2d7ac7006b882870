"""Forms for the namespace members page."""

from __future__ import annotations

from django import forms

from apps.core.models import Membership


class MemberAddForm(forms.Form):
    """Add an existing user, by username, with a role."""

    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.VIEWER)


class MemberRoleForm(forms.Form):
    """Change one member's role."""

    role = forms.ChoiceField(choices=Membership.Role.choices)
