"""The interpreter's exceptions."""

from __future__ import annotations

__all__ = ["ExpressionError", "InterpreterError", "WorkflowRefused"]


class InterpreterError(Exception):
    """The interpreter cannot run this workflow (bad input, bad state)."""


class WorkflowRefused(InterpreterError):
    """A workflow uses something the local interpreter cannot do; raised before anything runs.

    ``template`` names the template (empty for the workflow spec itself), ``field``
    the path of the offending field inside it, ``reason`` says why in words.
    """

    def __init__(self, template: str, field: str, reason: str) -> None:
        self.template = template
        self.field = field
        self.reason = reason
        where = f"template '{template}'" if template else "the workflow"
        if field:
            where += f" ({field})"
        super().__init__(f"{where}: {reason}")


class ExpressionError(InterpreterError):
    """An expression (``when``, ``depends``, ``{{=…}}``) could not be evaluated."""
