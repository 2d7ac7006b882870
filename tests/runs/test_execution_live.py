"""Execution behaviours of the local backend through a real worker: concurrency
across workers, per-step timeouts, live logs, and an S3 pipeline root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from apps.artifacts.models import Artifact
from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.models import Run, Task
from apps.runs.selectors import task_log_read
from apps.runs.services import run_create
from tests.live import start_worker, wait_for_run, wait_until
from tests.runs import kfp_pipelines as kp
from tests.runs.ir import container_pipeline

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _wait_for(path: Path) -> str:
    # Shell snippet: wait (up to 120 s) for a file another step creates.
    return f'i=0; while [ ! -e "{path}" ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 3; sleep 0.1; done'


def test_independent_steps_run_at_once_on_different_workers(step_shared, live_log_dir) -> None:  # type: ignore[no-untyped-def]
    # Each step announces itself, then waits for the other: both can only succeed if
    # they run at the same time. With one slot per worker, they must be on two workers.
    a, b = step_shared / "a", step_shared / "b"
    spec = container_pipeline(
        "rendezvous",
        {
            "left": {"command": ["sh", "-c", f'touch "{a}"; {_wait_for(b)}']},
            "right": {"command": ["sh", "-c", f'touch "{b}"; {_wait_for(a)}']},
        },
    )
    workers = [start_worker(live_log_dir, concurrency=1) for _ in range(2)]
    try:
        run = run_create(
            namespace=namespace_ensure(actor=OPERATOR), actor=OPERATOR, display_name="rv", pipeline_spec=spec
        )
        done = wait_for_run(run.pk, timeout=180)
        assert done.state == RuntimeState.SUCCEEDED, done.error
        hosts = {
            t.attempts.get().worker.rsplit(":", 1)[0] for t in Task.objects.filter(run=run, kind="CONTAINER")
        }
        assert len(hosts) == 2  # two different worker processes ran them
    finally:
        for w in workers:
            w.stop()


def test_step_timeout_from_the_platform_spec(worker) -> None:  # type: ignore[no-untyped-def]
    spec = container_pipeline("slow", {"slow": {"command": ["sleep", "120"]}})
    platform = {
        "platforms": {
            "kubernetes": {"deploymentSpec": {"executors": {"exec-slow": {"activeDeadlineSeconds": 1}}}}
        }
    }
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="to",
        pipeline_spec=spec,
        platform_spec=platform,
    )
    done = wait_for_run(run.pk, timeout=120)
    assert done.state == RuntimeState.FAILED
    assert "timed out" in Task.objects.get(run=run, key="root/slow").error


def test_logs_are_readable_while_the_step_runs(worker, step_shared) -> None:  # type: ignore[no-untyped-def]
    release = step_shared / "release"
    spec = container_pipeline(
        "chatty",
        {"talk": {"command": ["sh", "-c", f'echo "line one"; {_wait_for(release)}; echo "line two"']}},
    )
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR), actor=OPERATOR, display_name="logs", pipeline_spec=spec
    )

    def running_log() -> str:
        task = Task.objects.filter(run=run, key="root/talk", state=RuntimeState.RUNNING).first()
        return task_log_read(task=task).data.decode() if task and task.log_path else ""

    live = wait_until(lambda: "line one" in (text := running_log()) and text, what="the first log line")
    assert "line two" not in live
    release.touch()
    done = wait_for_run(run.pk, timeout=120)
    assert done.state == RuntimeState.SUCCEEDED
    full = task_log_read(task=Task.objects.get(run=run, key="root/talk")).data.decode()
    assert "line one" in full
    assert "line two" in full


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="canal-test")
    try:
        yield endpoint
    finally:
        server.stop()


def test_artifacts_flow_through_an_s3_pipeline_root(moto_s3, live_log_dir, settings) -> None:  # type: ignore[no-untyped-def]
    # A run's root must be a configured one: the bucket's prefix is configured here.
    settings.CANAL_PIPELINE_ROOTS = ["s3://canal-test/root"]
    worker = start_worker(
        live_log_dir, CANAL_S3_ENDPOINT_URL=moto_s3, CANAL_PIPELINE_ROOTS="s3://canal-test/root"
    )
    try:
        run = run_create(
            namespace=namespace_ensure(actor=OPERATOR),
            actor=OPERATOR,
            display_name="s3",
            pipeline_spec=kp.compile_to_ir(kp.artifacts_through_store),
            pipeline_root="s3://canal-test/root",
        )
        done = wait_for_run(run.pk, timeout=300)
        assert done.state == RuntimeState.SUCCEEDED, done.error
        artifact = Artifact.objects.get(run=run, name="data")
        assert artifact.uri.startswith(
            f"s3://canal-test/root/artifacts-through-store/{run.pk}/write-dataset/"
        )
        assert artifact.metadata == {"chars": 8}
        key = artifact.uri.removeprefix("s3://canal-test/")
        body = (
            boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
            .get_object(Bucket="canal-test", Key=key)["Body"]
            .read()
        )
        assert body == b"hello s3"
        reader = Task.objects.get(run=run, name="read-dataset")
        assert reader.outputs["parameters"]["Output"] == "HELLO S3"
        assert Run.objects.get(pk=run.pk).pipeline_root == "s3://canal-test/root"
    finally:
        worker.stop()
