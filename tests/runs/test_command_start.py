"""What a scripted ``manage.py run_pipeline`` loads before it starts a run.

Its process is measured against kfp.local's whole process (issue 12's chain-20
goal), and most of its time was start-up: Django's system checks loading the
whole URL configuration (every view, DRF, the API schema, markdown-it), CEL,
jsonschema. These tests run a fresh interpreter, so they see what a user's
process imports, and fail if one of those comes back on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.paths import KFP_VALID, missing

SCRIPT = """
import json, sys
import django
django.setup()
from django.core.management import load_command_class
command = load_command_class("apps.runs", "run_pipeline")
import apps.runs.services
from apps.importers import import_pipeline
WATCHED = ("celpy", "lark", "jsonschema", "pipelines_site.urls", "rest_framework.views", "markdown_it")
loaded = {}
for path in sys.argv[1:]:
    with open(path, "rb") as handle:
        import_pipeline(handle.read(), path.rsplit("/", 1)[-1])
    loaded[path] = sorted(m for m in WATCHED if m in sys.modules)
print(json.dumps({"checks": list(command.requires_system_checks), "loaded": loaded}))
"""


def _start(*paths: str) -> dict[str, object]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "pipelines_site.settings"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *paths], capture_output=True, text=True, check=True, env=env
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_run_pipeline_loads_neither_the_web_stack_nor_cel_for_a_pipeline_without_conditions() -> None:
    plain = KFP_VALID / "critical" / "add_numbers.yaml"
    conditional = KFP_VALID / "critical" / "flip_coin.yaml"
    if not plain.is_file() or not conditional.is_file():
        pytest.skip(missing(plain))
    assert "triggerPolicy" in conditional.read_text()  # the control: it has CEL conditions

    result = _start(str(plain), str(conditional))

    # No system checks: they import pipelines_site.urls, and with it every view.
    assert result["checks"] == []
    loaded = result["loaded"]
    assert isinstance(loaded, dict)
    assert loaded[str(plain)] == []
    # CEL loads when a pipeline needs it: its conditions are still checked at import.
    assert {"celpy", "lark"} <= set(loaded[str(conditional)])
    assert "pipelines_site.urls" not in loaded[str(conditional)]
