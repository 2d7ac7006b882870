"""Argo Workflow YAML on the local executor through real workers: the start message,
terminate, and a worker killed mid-run whose run another worker resumes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.pipelines.services import pipeline_create_from_upload
from apps.runs.models import Run, Task
from apps.runs.services import run_create, run_terminate
from tests.live import start_scheduler, start_worker, wait_for_run, wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

FAST_LEASE = {
    "CANAL_HEARTBEAT_SECONDS": "0.5",
    "CANAL_TASK_LEASE_SECONDS": "4",
    "CANAL_REDISPATCH_SECONDS": "2",
}


def _workflow(shared: Path) -> str:
    # "gate" waits for a file the test creates; "after" runs once the gate opened.
    return textwrap.dedent(
        f"""
        apiVersion: argoproj.io/v1alpha1
        kind: Workflow
        metadata: {{generateName: gated-}}
        spec:
          entrypoint: main
          templates:
          - name: main
            steps:
            - - {{name: gate, template: gate}}
            - - {{name: after, template: after}}
          - name: gate
            container:
              image: busybox
              command:
              - sh
              - -c
              - "echo $$ >> {shared}/starts; while [ ! -e {shared}/open ]; do sleep 0.1; done; echo opened"
          - name: after
            container: {{image: busybox, command: [sh, -c, "echo after"]}}
        """
    )


def _start(shared: Path) -> Run:
    version = pipeline_create_from_upload(
        actor=OPERATOR,
        namespace=namespace_ensure(actor=OPERATOR),
        data=_workflow(shared).encode(),
        filename="gated.yaml",
        name="gated",
    )
    return run_create(
        actor=OPERATOR, namespace=version.pipeline.namespace, display_name="gated", pipeline_version=version
    )


def _gate_running(run: Run) -> bool:
    return Task.objects.filter(run=run, key="root/gate", state=RuntimeState.RUNNING).exists()


def test_a_worker_runs_it_and_terminate_cancels_it(step_shared, worker) -> None:  # type: ignore[no-untyped-def]
    run = _start(step_shared)
    wait_until(lambda: _gate_running(run), timeout=120, what="the gate step to run")
    run_terminate(actor=OPERATOR, run=run)
    done = wait_for_run(run.pk, timeout=60)
    assert done.state == RuntimeState.CANCELED
    assert Task.objects.get(run=run, key="root/gate").state in (RuntimeState.CANCELED, RuntimeState.FAILED)
    assert not Task.objects.filter(run=run, key="root/after").exists()  # never started
    assert not Task.objects.filter(run=run, state__in=[RuntimeState.RUNNING, RuntimeState.PENDING]).exists()


def test_killed_worker_run_is_resumed_by_another(step_shared, live_log_dir) -> None:  # type: ignore[no-untyped-def]
    scheduler = start_scheduler(live_log_dir, **FAST_LEASE)
    first = start_worker(live_log_dir, **FAST_LEASE)
    second = None
    try:
        run = _start(step_shared)
        wait_until(lambda: _gate_running(run), timeout=120, what="the gate step to run")
        first.kill9()
        second = start_worker(live_log_dir, **FAST_LEASE)
        # The reaper hands the run over once the dead worker's lease lapses; the
        # interpreter resumes from the stored status and runs the lost pod again.
        wait_until(
            lambda: len((step_shared / "starts").read_text().split()) >= 2, timeout=120, what="a restart"
        )
        (step_shared / "open").write_text("")
        done = wait_for_run(run.pk, timeout=120)
        assert done.state == RuntimeState.SUCCEEDED, done.error
        assert Task.objects.get(run=run, key="root/after").state == RuntimeState.SUCCEEDED
    finally:
        first.stop()
        if second is not None:
            second.stop()
        scheduler.stop()
