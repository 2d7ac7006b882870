"""Issue 6 through the real kfp client: ``create_recurring_run`` with
``interval_second`` produces runs (executed by a real worker), and
``disable_recurring_run`` stops them. Web (live server), a Celery worker and a
scheduler process (`manage.py canal_scheduler`) all run for real."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import kfp
import pytest

from apps.core.choices import RecurringRunMode, RecurringRunStatus, RuntimeState
from apps.core.services import api_token_create
from apps.runs.models import Run
from apps.schedules.models import RecurringRun
from tests.api.kfp_pipelines import compile_to, hello_pipeline
from tests.factories import UserFactory
from tests.live import start_scheduler, wait_until

pytestmark = [
    pytest.mark.live,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:This client only works:FutureWarning"),
]

INTERVAL = 2
RUN_TIMEOUT = 240


@pytest.fixture
def client(
    live_stack: Any, transactional_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> kfp.Client:
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    for name in ("KF_PIPELINES_DEFAULT_EXPERIMENT_NAME", "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    user = UserFactory(username="scheduler-user")
    token = api_token_create(actor=user, user=user, name="kfp client")[1]
    return kfp.Client(host=live_stack.url, existing_token=token)


@pytest.fixture
def scheduler(live_log_dir: Path, live_stack: Any) -> Any:
    proc = start_scheduler(live_log_dir, tick=0.5)
    yield proc
    proc.stop()


def test_create_recurring_run_with_interval_produces_runs_and_disable_stops_them(
    client: kfp.Client, scheduler: Any, tmp_path: Path
) -> None:
    package = compile_to(hello_pipeline, tmp_path / "hello.yaml")
    pipeline = client.upload_pipeline(str(package), pipeline_name="scheduled-hello")
    [version] = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    experiment = client.create_experiment("recurring")
    recurring = client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name="tick-[[Index]]",
        interval_second=INTERVAL,
        pipeline_id=pipeline.pipeline_id,
        version_id=version.pipeline_version_id,
        params={"text": "scheduled at [[ScheduledTime.15:04:05]]"},
        max_concurrency=2,
    )
    assert recurring.status == RecurringRunStatus.ENABLED
    assert recurring.trigger.periodic_schedule.interval_second == str(INTERVAL)

    def runs() -> list[Any]:
        return client.list_runs(experiment_id=experiment.experiment_id, page_size=100).runs or []

    produced = wait_until(lambda: len(runs()) >= 2 and runs(), timeout=120, what="two scheduled runs")
    for run in produced:
        assert run.recurring_run_id == recurring.recurring_run_id
        assert run.display_name.startswith("tick-")
        assert run.runtime_config.parameters["text"].startswith("scheduled at ")
        assert "[[" not in run.runtime_config.parameters["text"]
    # They are real runs: the worker executes them.
    first = min(produced, key=lambda r: r.scheduled_at)
    done = client.wait_for_run_completion(first.run_id, timeout=RUN_TIMEOUT)
    assert done.state == RuntimeState.SUCCEEDED, done.error

    client.disable_recurring_run(recurring.recurring_run_id)
    assert client.get_recurring_run(recurring.recurring_run_id).status == RecurringRunStatus.DISABLED
    # Disabling takes the schedule's row lock, so a tick that was firing it has
    # finished: from here on, no run may appear.
    stopped_at = Run.objects.filter(recurring_run_id=recurring.recurring_run_id).count()
    rr = RecurringRun.objects.get(pk=recurring.recurring_run_id)
    assert rr.mode == RecurringRunMode.DISABLE and rr.next_fire_time is None
    time.sleep(3 * INTERVAL + 2)  # several intervals and scheduler ticks go by
    assert Run.objects.filter(recurring_run_id=recurring.recurring_run_id).count() == stopped_at
    assert len(runs()) == stopped_at
    assert scheduler.alive() and "Traceback" not in scheduler.output(), scheduler.output()[-4000:]
