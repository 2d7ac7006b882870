"""The new-experiment form."""

from __future__ import annotations

from django import forms

from apps.core.choices import RunExecutor
from apps.core.forms import CanalForm


class ExperimentForm(CanalForm):
    """A name (unique in the namespace) and a description."""

    display_name = forms.CharField(label="Name", max_length=255)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=10_000)
    execution_backend = forms.ChoiceField(
        label="Runs execute on",
        required=False,
        choices=(("", "The server's default"), *RunExecutor.choices),
    )
