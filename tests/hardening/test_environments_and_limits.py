"""Acceptance: task environments are immutable to steps, and memory limits are enforced.

Real pipelines, compiled by kfp and run by a real worker in the step sandbox.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.models import Task
from apps.runs.services import run_create
from tests.hardening import env_pipelines as envp
from tests.live import wait_for_run
from tests.runs.kfp_pipelines import compile_to_ir

pytestmark = [pytest.mark.live, pytest.mark.slow]


def _run(pipeline: Any, **parameters: Any) -> Any:
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name=pipeline.name,
        pipeline_spec=compile_to_ir(pipeline),
        parameters=parameters,
    )
    return wait_for_run(run.pk, timeout=600)


def _probe_wheel(directory: Path) -> Path:
    """A tiny installable wheel, made by hand so installing it needs no network or build."""
    wheel = directory / "canal_probe-0.1-py3-none-any.whl"
    files = {
        "canal_probe/__init__.py": "VALUE = 'probe'\n",
        "canal_probe-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: canal-probe\nVersion: 0.1\n",
        "canal_probe-0.1.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + "canal_probe-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("canal_probe-0.1.dist-info/RECORD", record)
    wheel.chmod(0o644)
    return wheel


def _installed_anywhere() -> list[Path]:
    return list(Path(settings.CANAL_TASK_ENV_DIR).glob("*/lib/python*/site-packages/canal_probe"))


def test_what_a_step_pip_installs_is_gone_for_the_next_step(worker: Any, step_shared: Path) -> None:
    wheel = _probe_wheel(step_shared)
    done = _run(envp.pip_in_a_step, wheel=str(wheel))
    assert done.state == RuntimeState.SUCCEEDED, done.error
    installer = Task.objects.get(run=done, name="pip-installer")
    checker = Task.objects.get(run=done, name="importer-check")
    # The step itself installed and imported it (pip worked, into its own overlay)...
    assert installer.outputs["parameters"]["report"].strip() == "probe"
    # ...the next step of the same environment cannot import it...
    assert checker.outputs["parameters"]["report"].strip() == "False"
    # ...and no cached environment holds it.
    assert _installed_anywhere() == []


def test_a_step_over_its_memory_limit_fails_naming_the_limit(worker: Any) -> None:
    over = _run(envp.memory_256m, mebibytes=1024)
    assert over.state == RuntimeState.FAILED
    task = Task.objects.get(run=over, name="allocate")
    assert task.state == RuntimeState.FAILED
    assert "exceeded its memory limit of 256M" in task.error, task.error

    under = _run(envp.memory_2g, mebibytes=1024)
    assert under.state == RuntimeState.SUCCEEDED, under.error
    assert Task.objects.get(run=under, name="allocate").outputs["parameters"]["Output"] == 1024
