"""Hostile input shared by the hardening tests, and what they need to check it.

The values are the ones issue 9 found giving 500s (or wedging runs); every edge
must answer them with a clear 400 naming the field, and write nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import yaml
from django.apps import apps
from django.db import connection

SURROGATE = "\ud800"
DEEP = 100_000
#: Out-of-range instants, as a client writes them.
HUGE_UNIX_SECONDS = 253402300800  # 10000-01-01T00:00:00Z
NEGATIVE_UNIX_SECONDS = -99999999999
END_OF_TIME = "9999-12-31T23:59:59Z"
YEAR_ONE = "0001-01-01T00:00:00Z"


def raw_json(value: Any) -> bytes:
    """``value`` as a hostile client sends it: a lone surrogate travels as the JSON
    escape ``\\ud800`` (json.dumps' ensure_ascii writes exactly that); no client could
    encode the character itself as UTF-8."""
    return json.dumps(value).encode("ascii")


def deep_json(depth: int = DEEP) -> bytes:
    """An array nested ``depth`` levels deep."""
    return b"[" * depth + b"]" * depth


def row_counts() -> Counter[str]:
    """Rows in every Canal table (and users): what a refused request must leave
    unchanged. One query, as the fuzz tests call it around every request."""
    models = [
        model
        for model in apps.get_models()
        if model.__module__.startswith("apps.") or model._meta.label == "auth.User"
    ]
    # Table names come from the models (quoted), never from input.
    quote = connection.ops.quote_name
    selects = ", ".join(f"(SELECT COUNT(*) FROM {quote(model._meta.db_table)})" for model in models)  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {selects}")
        row = cursor.fetchone()
    return Counter({model._meta.label: count for model, count in zip(models, row, strict=True)})


TYPED_IR = """\
components:
  comp-show:
    executorLabel: exec-show
    inputDefinitions:
      parameters:
        text: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-show:
      container: {image: python:3.11, command: [echo], args: ["{{$.inputs.parameters['text']}}"]}
pipelineInfo: {name: typed}
root:
  dag:
    tasks:
      show:
        componentRef: {name: comp-show}
        inputs: {parameters: {text: {componentInputParameter: text}}}
        taskInfo: {name: show}
  inputDefinitions:
    parameters:
      text: {parameterType: STRING, defaultValue: hello, isOptional: true}
      count: {parameterType: NUMBER_INTEGER, defaultValue: 3.0, isOptional: true}
      rate: {parameterType: NUMBER_DOUBLE, defaultValue: 0.5, isOptional: true}
      verbose: {parameterType: BOOLEAN, defaultValue: false, isOptional: true}
      tags: {parameterType: LIST, defaultValue: [a, b], isOptional: true}
      config: {parameterType: STRUCT, defaultValue: {depth: 2}, isOptional: true}
schemaVersion: 2.1.0
sdkVersion: kfp-2.14.6
"""
TYPED_SPEC: dict[str, Any] = yaml.safe_load(TYPED_IR)


def typed_version() -> Any:
    """A stored pipeline version whose root takes one parameter of every KFP type."""
    import hashlib

    from tests.factories import PipelineVersionFactory

    return PipelineVersionFactory(
        source=TYPED_IR,
        pipeline_spec=TYPED_SPEC,
        content_hash=hashlib.sha256(TYPED_IR.encode()).hexdigest(),
    )


# --- A section in pytest's terminal summary ---------------------------------------------

_SUMMARY: dict[str, list[str]] = {}


class _SummaryPlugin:
    """Prints the figures the fuzz tests recorded (visible without -s)."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for title, lines in _SUMMARY.items():
            terminalreporter.write_sep("-", title)
            for line in lines:
                terminalreporter.write_line(line)


def report(config: pytest.Config, title: str, lines: list[str]) -> None:
    """Show ``lines`` under ``title`` at the end of the run (the README quotes them)."""
    if not config.pluginmanager.has_plugin("canal-hardening-summary"):
        config.pluginmanager.register(_SummaryPlugin(), "canal-hardening-summary")
    _SUMMARY[title] = lines
