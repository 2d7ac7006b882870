"""The Celery application. Configuration lives in settings under ``CELERY_*``."""

import os

from celery import Celery
from celery.signals import worker_ready

from pipelines_site import broker  # noqa: F401  (registers the canalfs:// transport)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipelines_site.settings")

app = Celery("canal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker records a liveness heartbeat for /healthz (apps/core/heartbeat.py).
# Imported by path (a string) so that Django is set up before the module loads.
app.steps["worker"].add("apps.core.heartbeat:WorkerHeartbeatStep")


@worker_ready.connect  # type: ignore[untyped-decorator]  # Celery ships no types
def _report_step_sandbox(**_: object) -> None:
    """Say at start-up whether pipeline steps will be sandboxed (loudly when not)."""
    from apps.runs.services.local_steps import sandbox_startup_report

    sandbox_startup_report()
