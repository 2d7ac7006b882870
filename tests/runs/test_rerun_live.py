"""Re-running one step of a finished run (apps.runs.services.rerun), end to end with a
real worker: recorded upstream values, edited parameters, downstream tasks."""

from __future__ import annotations

import pytest

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.models import Run, Task
from apps.runs.services import run_create, task_rerun
from tests.live import wait_for_run
from tests.runs import rerun_pipelines as rp
from tests.runs.kfp_pipelines import compile_to_ir

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _failed_origin() -> Run:
    run = run_create(
        actor=OPERATOR,
        namespace=namespace_ensure(actor=OPERATOR),
        display_name="origin",
        pipeline_spec=compile_to_ir(rp.fails_when_negative),
        parameters={"x": -3},
    )
    run = wait_for_run(run.pk)
    assert run.state == RuntimeState.FAILED
    assert Task.objects.get(run=run, key="root/check").state == RuntimeState.FAILED
    return run


def test_rerun_with_an_edited_parameter_succeeds_using_recorded_upstream(worker) -> None:  # type: ignore[no-untyped-def]
    origin = _failed_origin()
    produced = Task.objects.get(run=origin, key="root/produce")
    child = task_rerun(actor=OPERATOR, run=origin, task_ref="root/check", parameters={"x": "4"})
    child = wait_for_run(child.pk)
    assert child.state == RuntimeState.SUCCEEDED, child.error
    assert child.rerun_of_id == origin.pk and child.rerun_of_task_key == "root/check"
    step = Task.objects.get(run=child, key="root/check")
    assert step.state == RuntimeState.SUCCEEDED
    # The upstream artifact is the one the origin recorded (produce did not run again,
    # and its content was written for x=-3).
    assert step.outputs["parameters"]["Output"] == "ok:4:data-for--3"
    assert not Task.objects.filter(run=child, name="produce").exists()
    data_uri = step.inputs["artifacts"]["data"][0]["uri"]
    assert data_uri == produced.outputs["artifacts"]["out"][0]["uri"]
    assert step.cache_status == "caching disabled"
    # Without downstream, only the step (and the importer feeding its artifact) ran.
    assert not Task.objects.filter(run=child, name="shout").exists()


def test_rerun_with_downstream_feeds_the_new_output_on(worker) -> None:  # type: ignore[no-untyped-def]
    origin = _failed_origin()
    child = task_rerun(
        actor=OPERATOR, run=origin, task_ref="root/check", parameters={"x": 7}, include_downstream=True
    )
    child = wait_for_run(child.pk)
    assert child.state == RuntimeState.SUCCEEDED, child.error
    shout = Task.objects.get(run=child, key="root/shout")
    assert shout.outputs["parameters"]["Output"] == "OK:7:DATA-FOR--3"
    # The condition task depends only on the pipeline parameter, not on check: not included.
    assert not Task.objects.filter(run=child, key__startswith="root/condition").exists()


def test_rerun_with_recorded_inputs_fails_the_same_way(worker) -> None:  # type: ignore[no-untyped-def]
    origin = _failed_origin()
    child = wait_for_run(task_rerun(actor=OPERATOR, run=origin, task_ref="root/check").pk)
    assert child.state == RuntimeState.FAILED
    assert Task.objects.get(run=child, key="root/check").inputs["parameters"]["x"] == -3


def test_run_step_command_waits_and_exits_by_the_outcome(worker) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.live import process_env
    from tests.paths import PROJECT

    origin = _failed_origin()

    def run_step(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "manage.py", "run_step", str(origin.pk), "check", "--wait", *extra]
        env = process_env()
        return subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)

    ok = run_step("--param", "x=2")
    assert ok.returncode == 0, ok.stderr
    assert "SUCCEEDED" in ok.stdout
    failed = run_step()
    assert failed.returncode != 0
    assert "FAILED" in failed.stderr
    assert Run.objects.filter(rerun_of=origin).count() == 2


def test_a_step_inside_a_loop_iteration_reruns_on_its_own(worker) -> None:  # type: ignore[no-untyped-def]
    from tests.runs import kfp_pipelines as kp

    run = run_create(
        actor=OPERATOR,
        namespace=namespace_ensure(actor=OPERATOR),
        display_name="loop",
        pipeline_spec=compile_to_ir(kp.collected_ints),
    )
    run = wait_for_run(run.pk)
    assert run.state == RuntimeState.SUCCEEDED, run.error
    step = Task.objects.get(run=run, name="square", key__endswith="#1/square")
    child = wait_for_run(task_rerun(actor=OPERATOR, run=run, task_ref=step.key, parameters={"x": 12}).pk)
    assert child.state == RuntimeState.SUCCEEDED, child.error
    assert Task.objects.get(run=child, key="root/square").outputs["parameters"]["Output"] == 144
