"""The Django template backend, with output that can always be sent.

A page shows stored values (run parameters, task inputs and outputs) that may hold a
lone surrogate, which Django's response cannot encode as UTF-8: the page would be a
500 for everyone until the row is deleted. Rendering replaces such characters with
U+FFFD instead, in one place for every page and fragment. Django has no setting for
this, and no library does it, hence this small subclass.
"""

from __future__ import annotations

from typing import Any

from django.template import TemplateDoesNotExist
from django.template.backends.django import DjangoTemplates as BaseDjangoTemplates
from django.template.backends.django import Template as BaseTemplate
from django.template.backends.django import reraise
from django.utils.safestring import mark_safe

from apps.core.text import without_surrogates


class Template(BaseTemplate):
    """A Django template whose rendered text is always encodable as UTF-8."""

    def render(self, context: Any = None, request: Any = None) -> Any:
        rendered = super().render(context, request)
        cleaned = without_surrogates(rendered)
        # Replacing a character in already-escaped output keeps it safe HTML.
        return rendered if cleaned is rendered else mark_safe(cleaned)  # noqa: S308


class DjangoTemplates(BaseDjangoTemplates):
    """``django.template.backends.django.DjangoTemplates`` returning :class:`Template`."""

    def from_string(self, template_code: str) -> Template:
        return Template(self.engine.from_string(template_code), self)

    def get_template(self, template_name: str) -> Template:
        try:
            return Template(self.engine.get_template(template_name), self)
        except TemplateDoesNotExist as exc:
            reraise(exc, self)
