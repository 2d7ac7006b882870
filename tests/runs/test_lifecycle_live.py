"""Terminate, retry and clone, end to end with a real worker."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.exceptions import FailedPrecondition
from apps.core.services import namespace_ensure
from apps.runs.models import Run, Task
from apps.runs.services import run_clone, run_create, run_retry, run_terminate
from tests.live import wait_for_run, wait_until
from tests.runs import kfp_pipelines as kp
from tests.runs.ir import container_pipeline

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _sleeping(seconds: int) -> list[int]:
    """Host pids of live ``sleep <seconds>`` processes (a sandboxed step's own pids are its
    sandbox's; its command line is what the host can recognise it by)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == f"sleep\0{seconds}\0".encode() and _pid_alive(
                    int(entry.name)
                ):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_terminate_cancels_the_run_and_kills_the_step(worker, step_shared) -> None:  # type: ignore[no-untyped-def]
    started = step_shared / "started"
    seconds = random.randint(10_000, 99_999)  # makes the step's sleeps recognisable
    spec = container_pipeline(
        "sleepy",
        {
            "sleep": {"command": ["sh", "-c", f"sleep {seconds} & sleep {seconds} & touch {started}; wait"]},
            "after": {"command": ["echo", "never"], "after": ["sleep"]},
        },
    )
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR), actor=OPERATOR, display_name="t", pipeline_spec=spec
    )
    wait_until(lambda: started.exists() and len(_sleeping(seconds)) == 2, what="the step to start")
    run_terminate(actor=OPERATOR, run=Run.objects.get(pk=run.pk))
    assert Run.objects.get(pk=run.pk).state in (RuntimeState.CANCELING, RuntimeState.CANCELED)
    done = wait_for_run(run.pk, timeout=60)
    assert done.state == RuntimeState.CANCELED
    assert [h["state"] for h in done.state_history][-2:] == ["CANCELING", "CANCELED"]
    states = dict(Task.objects.filter(run=run).values_list("key", "state"))
    assert states["root/sleep"] == RuntimeState.CANCELED
    assert states.get("root/after", RuntimeState.CANCELED) == RuntimeState.CANCELED
    # The shell and its background children (the whole process group) are gone.
    wait_until(lambda: not _sleeping(seconds), timeout=30, what="the step's processes to die")
    with pytest.raises(FailedPrecondition):
        run_terminate(actor=OPERATOR, run=done)


def test_retry_reruns_only_failed_steps_and_clone_starts_a_copy(worker, step_shared) -> None:  # type: ignore[no-untyped-def]
    params = {"text": "hi", "counter_path": str(step_shared / "once")}
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="r",
        pipeline_spec=kp.compile_to_ir(kp.fail_then_retry),
        parameters=params,
    )
    failed = wait_for_run(run.pk, timeout=300)
    assert failed.state == RuntimeState.FAILED
    produce_before = Task.objects.get(run=run, name="produce")
    report_before = Task.objects.get(run=run, name="report")
    assert Task.objects.get(run=run, name="fail-once").state == RuntimeState.FAILED

    run_retry(actor=OPERATOR, run=failed)  # the run is RUNNING again when this returns
    assert Run.objects.get(pk=run.pk).state == RuntimeState.RUNNING
    retried = wait_for_run(run.pk, timeout=300)
    assert retried.state == RuntimeState.SUCCEEDED
    produce_after = Task.objects.get(run=run, name="produce")
    assert produce_after.pk == produce_before.pk
    assert produce_after.attempts.count() == 1  # kept, not re-run
    assert Task.objects.get(run=run, name="report").attempts.count() == report_before.attempts.count()
    assert Task.objects.get(run=run, name="fail-once").outputs["parameters"]["Output"] == "HI!"
    assert [h["state"] for h in retried.state_history][-3:] == ["FAILED", "RUNNING", "SUCCEEDED"]

    clone = run_clone(run=retried, actor=OPERATOR)
    assert clone.cloned_from_id == retried.pk
    assert clone.runtime_parameters == retried.runtime_parameters
    cloned = wait_for_run(clone.pk, timeout=300)
    assert cloned.state == RuntimeState.SUCCEEDED  # the counter file exists now: no failure


def test_retry_of_a_run_that_never_started_a_step_is_refused_clearly() -> None:
    from apps.runs.services import lifecycle

    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="x",
        pipeline_spec=container_pipeline("x", {"a": {"command": ["true"]}}),
    )
    Run.objects.filter(pk=run.pk).update(state=RuntimeState.FAILED)  # failed before planning
    with pytest.raises(FailedPrecondition, match="start a new run instead"):
        lifecycle.run_retry(actor=OPERATOR, run=Run.objects.get(pk=run.pk))
