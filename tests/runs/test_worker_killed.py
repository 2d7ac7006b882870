"""A worker killed with SIGKILL mid-step never leaves a run RUNNING forever: the step's
lease lapses, the scheduler's reaper retries it (per its retry policy) or fails it,
and a restarted worker carries on."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.models import Task
from apps.runs.services import run_create
from tests.live import start_scheduler, start_worker, wait_for_run, wait_until
from tests.runs.ir import container_pipeline

pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Notice a dead worker within seconds: heartbeat twice a second, lease of 4 s.
FAST_LEASE = {"CANAL_HEARTBEAT_SECONDS": "0.5", "CANAL_TASK_LEASE_SECONDS": "4"}

# First attempt: leave a marker, say so, and hang. Later attempts: succeed at once.
HANG_ONCE = [
    "sh",
    "-c",
    'if [ -f "$0" ]; then echo "second attempt"; exit 0; fi; touch "$0"; echo started; exec sleep 300',
]


def _start_runs(tmp_path: Path, count: int, retry: dict | None) -> list:  # type: ignore[type-arg]
    runs = []
    for i in range(count):
        step = {"command": [*HANG_ONCE, str(tmp_path / f"marker-{i}")]}
        if retry:
            step["retry"] = retry
        spec = container_pipeline(f"hang-once-{i}", {"hang": step})
        runs.append(
            run_create(
                namespace=namespace_ensure(actor=OPERATOR),
                actor=OPERATOR,
                display_name=f"k{i}",
                pipeline_spec=spec,
            )
        )
    return runs


def _wait_all_started(runs: list) -> None:  # type: ignore[type-arg]
    def started() -> bool:
        tasks = Task.objects.filter(run__in=runs, key="root/hang", state=RuntimeState.RUNNING)
        return tasks.count() == len(runs) and all(
            t.log_path and Path(t.log_path).exists() and "started" in Path(t.log_path).read_text()
            for t in tasks
        )

    wait_until(started, timeout=120, what="every step to be running")


def test_killed_worker_step_is_retried_and_runs_finish(step_shared, live_log_dir) -> None:  # type: ignore[no-untyped-def]
    scheduler = start_scheduler(live_log_dir, **FAST_LEASE)
    first = start_worker(live_log_dir, **FAST_LEASE)
    try:
        runs = _start_runs(step_shared, 3, retry={"maxRetryCount": 2, "backoffDuration": "0s"})
        _wait_all_started(runs)
        first.kill9()
        second = start_worker(live_log_dir, **FAST_LEASE)
        try:
            for run in runs:
                finished = wait_for_run(run.pk, timeout=180)
                assert finished.state == RuntimeState.SUCCEEDED, finished.error
                task = Task.objects.get(run=run, key="root/hang")
                attempts = list(task.attempts.order_by("number"))
                assert [a.state for a in attempts] == [RuntimeState.FAILED, RuntimeState.SUCCEEDED]
                assert "stopped heartbeating" in attempts[0].error
                assert "second attempt" in Path(attempts[1].log_path).read_text()
        finally:
            second.stop()
    finally:
        first.stop()
        scheduler.stop()


def test_killed_worker_step_without_retries_fails_the_run(step_shared, live_log_dir) -> None:  # type: ignore[no-untyped-def]
    scheduler = start_scheduler(live_log_dir, **FAST_LEASE)
    first = start_worker(live_log_dir, **FAST_LEASE)
    try:
        (run,) = _start_runs(step_shared, 1, retry=None)
        _wait_all_started([run])
        first.kill9()
        finished = wait_for_run(run.pk, timeout=120)
        assert finished.state == RuntimeState.FAILED
        task = Task.objects.get(run=run, key="root/hang")
        assert task.state == RuntimeState.FAILED
        assert "stopped heartbeating" in task.error
        assert not Task.objects.filter(run=run, state=RuntimeState.RUNNING).exists()
    finally:
        first.stop()
        scheduler.stop()
