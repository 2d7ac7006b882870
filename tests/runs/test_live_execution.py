"""Runs executed end to end by a real Celery worker process."""

from __future__ import annotations

import yaml

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.models import Task
from apps.runs.services import run_create
from tests.live import wait_for_run
from tests.paths import KFP_VALID


def _spec(rel: str) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((KFP_VALID / rel).read_text())


def test_lightweight_pipeline_runs_to_completion(worker) -> None:  # type: ignore[no-untyped-def]
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="add",
        pipeline_spec=_spec("critical/add_numbers.yaml"),
        parameters={"a": 40, "b": 2},
    )
    run = wait_for_run(run.pk)
    assert run.state == RuntimeState.SUCCEEDED, run.error
    step = Task.objects.get(run=run, key="root/add-numbers")
    assert step.outputs["parameters"]["Output"] == 42
    assert step.attempts.count() == 1
    assert step.log_path
    assert [h["state"] for h in run.state_history] == ["PENDING", "RUNNING", "SUCCEEDED"]
